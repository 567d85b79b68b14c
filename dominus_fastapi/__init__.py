"""dominus_fastapi: the async, FastAPI-first SDK for the Dominus platform."""
