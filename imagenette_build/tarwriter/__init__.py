"""Deterministic .tgz archives, with every checksum computed while writing.

- `tarformat`: the bytes of the format: `tar_header` (the one place a header is made), the gzip
  header, stored deflate blocks and the compressor's name;
- `pipeline`: the threads that deflate, hash and write the tar stream;
- `directio`: O_DIRECT writes of full-size archives, where the filesystem type says so;
- `writer`: `ArchiveWriter`, one archive under a temporary name, renamed into place when complete.
"""

from .tarformat import BLOCK, RECORD, compressor_name, tar_header
from .writer import ArchiveInfo, ArchiveWriter

__all__ = [
    "BLOCK", "RECORD", "ArchiveInfo", "ArchiveWriter", "compressor_name", "tar_header",
]
