"""The reference README's File Storage block (the file is written first, so that it can be opened)."""

import asyncio
import os
import tempfile

os.environ["DOMINUS_TOKEN"] = "your-psk-token"

from dominus import NotFoundError, dominus


async def main():
    os.chdir(tempfile.mkdtemp())
    with open("report.pdf", "wb") as f:
        f.write(b"%PDF-1.4 the 2025 report")

    # Upload file
    with open("report.pdf", "rb") as f:
        result = await dominus.files.upload(
            data=f.read(),
            filename="report.pdf",
            category="reports"
        )

    # Get download URL
    download = await dominus.files.download(file_id=result["id"])
    url = download["download_url"]
    # Embedded mode: the URL names a host that exists only in this process; read the bytes with fetch.
    assert url.startswith("http://dominus-local.embedded/")
    fetched = await dominus.files.fetch(result["id"])
    assert fetched["data"] == b"%PDF-1.4 the 2025 report"

    # List files
    files = await dominus.files.list(category="reports", prefix="2025/")
    assert files["objects"] == []  # stored at its file name, outside 2025/
    everything = await dominus.files.list(category="reports")
    assert [o["id"] for o in everything["objects"]] == [result["id"]]

    # Delete file
    await dominus.files.delete(file_id=result["id"])
    try:
        await dominus.files.fetch(result["id"])
    except NotFoundError:
        pass
    else:
        raise AssertionError("the file was deleted")
    await dominus.aclose()
    print("ok")


asyncio.run(main())
