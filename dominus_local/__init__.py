"""dominus_local: an open implementation of the Dominus orchestrator and gateway."""
