"""`verify`: is this .tgz the dataset it claims to be? Five levels, each passing or failing alone:
identity (hashes), structure (layout and member list), members (sha256 against the member lists),
images (each decodes, at its size), source (with --imagenet: against the originals, regenerated).
docs/verify.md is the reference: what each level checks, and the bounds on what verify reads.

The archive is read once, as a stream (`archive_reader`): hashes, structure and member bytes all
come from that one pass; nothing is extracted or written. The modules, in the order they import:

- `target`: the options, and what the archive claims to be (its name, manifest, build report and
  member list beside it);
- `report`: a result per level, problem lists bounded to their first few, text (`printable`) and
  JSON forms;
- `identity`, `structure`, `memberlists`: levels 1, 2 and 3;
- `checks`: the per-member work in the workers (decode, regenerate, compare);
- `tally`: levels 4 and 5, from the workers' results, and the recipe sweep's ranking;
- `checking`: levels 4 and 5 for any output: the plan, the spec, the workers' pass and tallies;
- `run`: the pass itself (`check`), member bytes to the workers in batches bounded in bytes.

A folder of parquet or WebDataset shards, or one shard (`run.check` sends it on), has the same
levels, the shards being its identity: `shardtarget` (what the sums, report and member list beside
the folder say), `shardread` (a shard as rows, bounded), `shardlevels` (identity and structure)
and `shards` (the pass, row by row).
"""

from .report import FIRST_FEW, LevelResult, Report, printable
from .run import check
from .target import RecipeGrid, VerifyOptions

__all__ = ["FIRST_FEW", "LevelResult", "RecipeGrid", "Report", "VerifyOptions", "printable",
           "check"]
