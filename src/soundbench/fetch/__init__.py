"""Resumable verified downloads, trust-on-first-use checksums and safe archive extraction."""
from soundbench.fetch.checksums import ChecksumLock
from soundbench.fetch.download import ChecksumError, DownloadError, download, file_digest
from soundbench.fetch.extract import (
    ArchiveLimitError,
    Budget,
    ExtractError,
    Limits,
    UnsafeArchiveError,
    extract,
    write_encrypted_zip,
)

__all__ = ["ArchiveLimitError", "Budget", "ChecksumError", "ChecksumLock", "DownloadError", "ExtractError", "Limits",
           "UnsafeArchiveError", "download", "extract", "file_digest", "write_encrypted_zip"]
