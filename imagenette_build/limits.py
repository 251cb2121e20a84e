"""How much `verify` reads from input it must not trust (an archive downloaded from anywhere, and the
files beside it), in one place. docs/verify.md ("What verify reads, at most") lists them; each refusal is one line.
And the pixel bounds that the build and verify share (the end of this file).

Every bound is far above what a dataset this tool makes can need (ImageNet-1k whole: 1.33 M
members, names under 100 bytes, JPEGs under 16 MB, pax headers of a few hundred bytes), and low
enough that memory stays bounded whatever the input: without them a 1 MB .tgz took 3 GB.
"""

from __future__ import annotations

MIB = 1 << 20

# Members: one is held in memory at a time (then in a worker task); a larger one is refused and
# skipped in the stream, never read. ImageNet's largest JPEG is about 15 MB.
MAX_MEMBER_BYTES = 64 * MIB
# A member name longer than PATH_MAX is refused, and only its first bytes are kept to name it.
MAX_NAME_BYTES = 4096
# Every member's name is held until the end (duplicates, the member lists, the manifest's list):
# about 290 bytes a member plus twice its name (measured), so ImageNet-1k whole (1,333,170 members,
# 66 MB of names) holds ~500 MB, and these bounds at most ~700 MB.
MAX_MEMBERS = 1_500_000
MAX_NAMES_BYTES = 128 * MIB

# tar headers: tarfile reads a pax or GNU long-name header's payload whole before it can be
# checked, and applies every pax global header's keys to each later member (copying them all, so
# many small keys cost time on every member). Global headers in the wild are a few dozen bytes
# (`git archive` writes its commit id).
MAX_HEADER_BYTES = 1 * MIB  # one pax, GNU long name or long link header
MAX_GLOBAL_HEADER_BYTES = 8 * 1024  # all pax global headers together
MAX_HEADER_CHAIN = 8  # extension headers before one member (tarfile reads them recursively)

# Member bytes sent to the workers: a task ends once it holds BATCH_BYTES, the tasks in flight
# once they hold IN_FLIGHT_BYTES_PER_JOB for each worker (each with the member or task that passed
# it). Per worker, as each needs tasks at hand to stay busy: images of a usual size fill the 8 tasks
# per worker of the engine's window first (32 full-size ImageNet JPEGs are ~4 MB).
BATCH_BYTES = 16 * MIB
IN_FLIGHT_BYTES_PER_JOB = 32 * MIB

# Files beside the archive, read by readfile (regular files only). A build report is a few kB (more
# with a long --skip-broken list); ImageNet-1k's member list takes about 130 MB.
MAX_REPORT_BYTES = 16 * MIB
MAX_LIST_BYTES = 256 * MIB

# A folder of shards (a parquet or WebDataset output): each shard holds at least one image, so no
# more shards than members; the shard names and digests held until the end take ~300 bytes each.
MAX_SHARDS = MAX_MEMBERS
# A parquet shard: pyarrow reads its footer (the file's metadata) whole and holds it decoded, so
# its length is checked first. Ours hold ~500 bytes a column of each row group (a 256 MiB shard:
# ~40 kB). Each row group's declared size is checked before it is read: the build writes 32 MiB of
# images a row group, plus the one image that passed it (at most a member's bound).
MAX_PARQUET_FOOTER_BYTES = 16 * MIB
MAX_ROW_GROUP_BYTES = 128 * MIB
# A WebDataset sample's .json and .cls (ours: ~200 bytes and a number); its .jpg is a member.
MAX_SAMPLE_META_BYTES = 64 * 1024

# Images, in pixels: one set of bounds for what the build decodes and writes and what verify decodes,
# so that the build never writes a member that verify refuses. Each is checked against an image's
# header, before any pixel is decoded. Constants, never read from PIL at run time: a caller may change
# Image.MAX_IMAGE_PIXELS (notebooks set it to None), and the bounds must not move with it.
PILLOW_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS
# Any image decoded, a source by the build (resized or checked) or a member by verify: more is what
# Pillow calls a decompression bomb (twice its MAX_IMAGE_PIXELS). 720 MB as Pillow holds RGB (4 bytes).
MAX_DECODE_PIXELS = 2 * PILLOW_MAX_IMAGE_PIXELS
# A resized image, and so each member of a sized archive: a side of at most libjpeg's
# JPEG_MAX_DIMENSION (jmorecfg.h; its encoder refuses more, after Pillow's error handler has printed
# libjpeg's message on stderr), and at most Pillow's MAX_IMAGE_PIXELS (360 MB as Pillow's RGB). A 2 x
# 65,000 px JPEG of 16 kB, resized to 160 x 5,200,000, took 6.8 GB before failing at the encoder.
MAX_OUTPUT_SIDE = 65_500
MAX_OUTPUT_PIXELS = PILLOW_MAX_IMAGE_PIXELS
# Reads Image.open makes to parse an image's header, about 4 per JPEG segment, PNG chunk or GIF
# block: the ImageNet photos need under 100, a GIF with a 100 kB comment 800. Pillow parses them one
# by one in Python and keeps each: 15 million empty JPEG comments (a 60 MiB member) took 18 s and
# 1.2 GB before a pixel was decoded.
MAX_HEADER_READS = 20_000
# A progressive JPEG's scans (each is a pass over the whole image: 31 bytes apiece, ~140 ms each at
# MAX_DECODE_PIXELS, so a 1 MB file of 30,000 held a worker for over an hour). libjpeg writes 6 to
# 18 (10 for colour); counted as start-of-scan markers, an embedded thumbnail's included.
MAX_JPEG_SCANS = 100
# --size: the largest shortest side at which a 4:3 image fits MAX_OUTPUT_PIXELS (8192 x 10922).
MAX_SIZE = 8192


def size_out_of_range(size: int) -> str:
    """The one message for a --size (or the API's size) out of 1..MAX_SIZE."""
    return (f"{size} is out of range: sizes are 1..{MAX_SIZE} pixels (a larger one would make a 4:3 photo more "
            f"than the {MAX_OUTPUT_PIXELS:,} px a resized image may have)")
