"""Levels 1 and 2 of a folder of shards (`shards`): identity (the shards against SHA256SUMS, MD5SUMS
and the report's entry beside the folder) and structure (each shard read whole, named and numbered
as the build names them, each row's split, class and label, and the counts)."""

from __future__ import annotations

from ..archive_bytes import Digests
from ..limits import MAX_MEMBER_BYTES
from ..readfile import read_bytes
from ..sums import SUM_FILES
from .report import FIRST_FEW, LevelResult, counted
from .shardtarget import ShardTarget
from .structure import diff_against_list, is_junk

# The levels read a `shards.ShardScan` (what the pass over the shards found), passed in as `scan`:
# shards imports this module, so the type is not imported here (no loop, not even a typing one).

def _shards(n: int) -> str:
    return f"{n} shard" if n == 1 else f"{n} shards"


def _differences(target: ShardTarget, name: str, digests) -> list[str]:
    """What the sums lines and the report's entry say of a shard that its bytes are not."""
    out = []
    for sums_name, lines in target.sums.items():
        listed = (lines or {}).get(name)
        actual = digests.sha256 if SUM_FILES[sums_name] == 64 else digests.md5
        if listed is not None and listed != actual:
            out.append(f"{sums_name} says {listed}, its hash is {actual}")
    entry = (target.files or {}).get(name)
    if entry is not None:
        for key, actual in (("bytes", digests.size), ("sha256", digests.sha256), ("md5", digests.md5)):
            if entry[key] != actual:
                out.append(f"{target.stem}.json says {key} {str(entry[key])[:64]}, the file has {actual}")
    return out


def _documents(target: ShardTarget, scan) -> tuple[list[str], list[str], list[str]]:
    """The documents listed (card, Croissant, contact sheet), each hashed and held against its lines
    and report entry: (differ, missing, not read)."""
    differ, missing, unread = [], [], []
    for name in sorted(target.listed_documents):
        kind = scan.files.get(name)
        if kind is None:
            missing.append(name)
            continue
        if kind != "file":
            unread.append(f"{name} ({kind}, not a file the build wrote)")
            continue
        try:
            data = read_bytes(target.folder / name, MAX_MEMBER_BYTES, "a document of the folder",
                              follow_symlinks=False)
        except (OSError, ValueError) as exc:
            unread.append(f"{name} ({exc})")
            continue
        digests = Digests.of(data)
        if why := _differences(target, name, digests):
            differ.append(f"{name} ({'; '.join(why)})")
    return differ, missing, unread


def identity_level(target: ShardTarget, scan) -> LevelResult:
    """Every shard listed is there, a regular file, of the listed size and hashes; nothing else is."""
    problems = list(target.problems)
    notes = []
    if target.report_problem:
        problems.append(target.report_problem)
    if target.report_note:
        notes.append(target.report_note)
    if scan.listing_problem:
        problems.append(scan.listing_problem)
    folder = f"{target.folder.name}/"
    listed = target.listed
    if not listed:
        notes.append(f"no line of SHA256SUMS or MD5SUMS and no build report beside it lists the shards of {folder}: "
                     "their hashes are not checked")
    differ, unhashed = [], []
    for name, digests in sorted(scan.read.items()):
        if digests is None:
            unhashed.append(name)
        elif why := _differences(target, name, digests):
            differ.append(f"{name} ({'; '.join(why)})")
    if differ:
        problems.append(counted("shards differ from what is listed", differ))
    missing = sorted(n for n, why in scan.unread.items() if why == "not in the folder")
    if missing:
        problems.append(counted(f"shards listed but not in {folder}", missing))
    others = sorted(f"{n} ({why})" for n, why in scan.unread.items() if why != "not in the folder")
    if others:
        problems.append(counted("shards not read", others))
    doc_differ, doc_missing, doc_unread = _documents(target, scan)
    if doc_differ:
        problems.append(counted("documents differ from what is listed", doc_differ))
    if doc_missing:
        problems.append(counted(f"documents listed but not in {folder}", doc_missing))
    if doc_unread:
        problems.append(counted("documents not read", doc_unread))
    unlisted = scan.unlisted_documents()
    if unlisted:
        notes.append(f"{', '.join(unlisted)}: the folder's documents; no sums line or report lists them: not checked")
    extra = scan.extra()
    junk = [n for n in extra if is_junk(n)]
    if junk:
        (problems if scan.strict else notes).append(counted("junk files (.DS_Store, ._*)", junk))
    extra = [n for n in extra if not is_junk(n)]
    if extra:
        problems.append(counted(f"files in {folder} that no sums line or report lists (not read)", extra))
    states = {}
    for sums_name, lines in target.sums.items():
        states[sums_name] = "unreadable" if lines is None else "no lines" if not lines else "listed"
        if lines is not None and not lines:
            notes.append(f"{sums_name} beside it has no line for {folder}")
    read = [d for d in scan.read.values() if d is not None]
    size = sum(d.size for d in read)
    sources = [n for n, s in states.items() if s == "listed"] + ([f"{target.stem}.json"] if target.files else [])
    summary = f"{_shards(len(scan.read))} of {folder}, {size:,} bytes"
    if target.listed_documents:
        summary += f", and {', '.join(sorted(target.listed_documents))}"
    if sources and not problems:
        said = " and ".join([", ".join(sources[:-1]), sources[-1]] if len(sources) > 1 else sources)
        summary += f"; each as {said} {'lists' if len(sources) == 1 else 'list'} it"
    data = {"shards": len(scan.read), "bytes": size, "sums_files": states,
            "build_report": "unreadable" if target.report_problem else "describes it" if target.files is not None
            else "not about this output" if target.report_note else None,
            "differ": differ[:FIRST_FEW], "missing": missing[:FIRST_FEW], "not_read": others[:FIRST_FEW],
            "extra": extra[:FIRST_FEW], "not_hashed": unhashed[:FIRST_FEW],
            "documents": sorted(target.listed_documents), "documents_differ": doc_differ[:FIRST_FEW]}
    return LevelResult("identity", not problems, summary, problems, notes, data)


def _count_problems(scan) -> list[str]:
    """The rows per split and class against the report's `counts` (and its `images`)."""
    report = scan.target.report or {}
    counts, images = report.get("counts"), report.get("images")
    if counts is None:
        return []
    if not (isinstance(counts, dict) and all(isinstance(c, dict) and all(type(n) is int for n in c.values())
                                             for c in counts.values())):
        return [f"{scan.target.stem}.json: its counts are not numbers per split and class"]
    expected = {(s, w): n for s, per_class in counts.items() for w, n in per_class.items() if n}
    wrong = [f"{s}/{w}: {scan.counts.get((s, w), 0)} rows, the report counts {n}"
             for (s, w), n in sorted(expected.items()) if scan.counts.get((s, w), 0) != n]
    wrong += [f"{s}/{w}: {n} rows, the report counts none" for (s, w), n in sorted(scan.counts.items())
              if (s, w) not in expected]
    problems = [counted("splits and classes whose rows are not the report's counts", wrong)] if wrong else []
    if type(images) is int and images != scan.rows:
        problems.append(f"{scan.rows} rows in all, the report counts {images} images")
    return problems


def _numbering_problems(scan) -> list[str]:
    """Shard names as the build names them; each split's numbers 0..N-1 of the same N."""
    names = (set(scan.read) | {n for n in scan.unread if n in scan.files}
             | (set() if scan.target.only else set(scan.extra())))  # what the folder holds
    by_split: dict[str, set[tuple[int, int]]] = {}
    odd = []
    for name in sorted(names):
        m = scan.name_re.fullmatch(name)
        if m is None:
            odd.append(name)
        else:
            by_split.setdefault(m["split"], set()).add((int(m["number"]), int(m["total"])))
    problems = [counted(f"shards not named <split>-NNNNN-of-NNNNN.{scan.target.ext}", odd)] if odd else []
    if scan.target.only is None:
        for split, numbers in sorted(by_split.items()):
            totals = {t for _, t in numbers}
            have = {n for n, _ in numbers}
            if len(totals) > 1:
                problems.append(f"split {split}: shards 'of' {', '.join(f'{t:05d}' for t in sorted(totals))}: "
                                "not one set of shards")
            elif gap := sorted(set(range(max(totals))) - have) + sorted(n for n in have if n >= max(totals)):
                problems.append(counted(f"split {split}: shard numbers missing or out of 0..{max(totals) - 1}",
                                        [f"{split}-{n:05d}-of-{max(totals):05d}.{scan.target.ext}" for n in gap]))
    return problems


def structure_level(scan) -> LevelResult:
    target = scan.target
    problems, notes = [], []
    for label, items in (("shards that do not read whole", scan.broken),
                         ("unsafe members (never extract these shards)", scan.unsafe),
                         ("members that are not part of a sample", scan.bad),
                         ("rows that cannot be read", scan.malformed),
                         ("rows stored twice", scan.duplicates),
                         ("images too large to be images", scan.too_large),
                         ("rows in the wrong split or class", scan.misplaced),
                         ("rows whose labels are not their class's", scan.labels)):
        if items:
            problems.append(counted(label, items))
    if scan.full:
        problems.append(scan.full)
    problems += _numbering_problems(scan)
    if scan.classes_problem:
        problems.append(scan.classes_problem)
    elif scan.classes is None:
        notes.append("no build report and no manifest: labels not checked (give --manifest)")
    whole = target.only is None and scan.complete and not scan.full  # (a shard not read: its rows are missing)
    if target.report is None:
        notes.append(f"no build report of {target.folder.name}/ beside it: counts not checked")
    elif whole:
        problems += _count_problems(scan)
    elif target.only is not None:
        notes.append("one shard: counts not checked (verify the folder for them)")
    if target.manifest is not None and target.manifest.split.policy == "files" and whole and not scan.no_member:
        diff = diff_against_list(list(scan.digests), target.manifest)
        for label, rels in (("members missing", diff.missing), ("members not in the manifest", diff.extra),
                            ("members in the wrong split or class", diff.misplaced)):
            if rels:
                problems.append(f"against manifest {target.manifest.name}: {counted(label, rels)}")
    if not scan.rows and not problems:
        problems.append("the shards hold no rows")
    per_split: dict[str, int] = {}
    for (split, _), n in sorted(scan.counts.items()):
        per_split[split] = per_split.get(split, 0) + n
    shown = ", ".join(f"{s} {n}" for s, n in per_split.items()) or "no rows"
    classes = len({w for _, w in scan.counts})
    summary = f"{scan.rows} rows in {_shards(len(scan.read))} ({shown}; {classes} classes)"
    if not problems and target.report is not None and whole:
        summary += ", as the report counts them; every label its class's"
    data = {"rows": scan.rows, "shards": len(scan.read), "counts": {s: n for s, n in per_split.items()},
            "labels_wrong": len(scan.labels), "labels_wrong_first": scan.labels.first,
            "no_member": len(scan.no_member)}
    return LevelResult("structure", not problems, summary, problems, notes, data)

