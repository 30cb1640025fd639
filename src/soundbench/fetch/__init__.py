"""Resumable verified downloads, trust-on-first-use checksums and safe archive extraction."""
from soundbench.fetch.checksums import ChecksumLock
from soundbench.fetch.download import ChecksumError, DownloadError, download, file_digest
from soundbench.fetch.extract import ExtractError, UnsafeArchiveError, extract, write_encrypted_zip

__all__ = ["ChecksumError", "ChecksumLock", "DownloadError", "ExtractError", "UnsafeArchiveError", "download",
           "extract", "file_digest", "write_encrypted_zip"]
