"""Level 1, identity: the archive's size and hashes against every published upload (a match is
information, not a requirement: a self-built archive matches none), and against the SHA256SUMS,
MD5SUMS and build report beside it (a mismatch there fails)."""

from __future__ import annotations

import os

from ..archive_reader import Digests, clip
from ..errors import UserError
from ..formats import FORMATS
from ..limits import MAX_MEMBER_BYTES
from ..published import Published
from ..readfile import read_bytes
from ..sums import SUM_FILES, read_sums
from .report import LevelResult
from .target import Target, section


def matches_upload(d: Digests, row: Published) -> bool:
    """Every value the row knows must match; a row that knows nothing matches nothing."""
    pairs = [(row.size, d.size), (row.md5.lower(), d.md5), (row.md5_first_mib.lower(), d.md5_first_mib),
             (row.sha256.lower(), d.sha256)]
    known = [(want, got) for want, got in pairs if want not in (None, "")]
    return bool(known) and all(want == got for want, got in known)


def published_match_message(d: Digests, rows: list[Published]) -> tuple[str, list[Published]]:
    found = [r for r in rows if matches_upload(d, r)]
    if not found:
        return "matches no published upload", found
    return "matches " + "; ".join(f"{r.archive} as uploaded {r.uploaded}" for r in found), found


def _check_sums_files(target: Target, d: Digests) -> tuple[list[str], list[str], dict]:
    """SHA256SUMS / MD5SUMS beside the archive: a line for it that disagrees is a failure."""
    problems, notes, data = [], [], {}
    for sums_name, digest_len, actual in (("SHA256SUMS", 64, d.sha256), ("MD5SUMS", 32, d.md5)):
        path = target.path.with_name(sums_name)
        if not os.path.lexists(path):  # (anything else there, a FIFO say, read_sums names and refuses)
            continue
        try:
            listed = read_sums(path, digest_len, only=target.path.name).get(target.path.name)
        except UserError as exc:
            problems.append(str(exc))
            data[sums_name] = "unreadable"
            continue
        if listed is None:
            notes.append(f"{sums_name} beside it has no line for {target.path.name}")
            data[sums_name] = "no line"
        elif listed.lower() == actual:
            notes.append(f"{sums_name}: matches")
            data[sums_name] = "matches"
        else:
            problems.append(f"{sums_name} says {listed}, the file's hash is {actual}")
            data[sums_name] = "differs"
    return problems, notes, data


# What a report that describes an archive (target.ARCHIVE_FIELDS) must hold for this file to match it.
_COMPARED = ("archive_bytes", "sha256", "md5")


def _check_build_report(target: Target, d: Digests) -> tuple[list[str], list[str], str | None]:
    """The report `<stem>.json` beside the archive: its size and hashes must be this file's. A
    report that describes no archive is a note (`target.report_note`), never a match; one that
    describes an archive but lacks its size or hashes fails, as does one that differs."""
    name = target.report_path.name
    if target.report_problem:
        return [target.report_problem], [], "unreadable"
    if target.report_note:
        return [], [target.report_note], "not about this archive"
    if target.report is None:
        return [], [], None
    report = target.report
    problems = []
    missing = [key for key in _COMPARED if report.get(key) is None]
    if missing:
        problems.append(f"{name} describes an archive without its {', '.join(missing)}: not a build report of "
                        f"{target.path.name}")
    for key, actual in (("archive_bytes", d.size), ("sha256", d.sha256), ("md5", d.md5),
                        ("md5_first_mib", d.md5_first_mib)):
        said = report.get(key)
        if said is None:
            continue
        if not isinstance(said, (str, int)):  # nothing else is printed: it could be nested a thousand deep
            problems.append(f"{name} has a {key} that is neither a number nor a string")
        elif str(said).lower() != str(actual):
            problems.append(f"{name} says {key} {clip(str(said))}, the file has {actual}")
    return problems, ([] if problems else [f"{name}: size, sha256 and md5 match"]), ("differs" if problems else "matches")


def _check_documents(target: Target) -> tuple[list[str], list[str]]:
    """The documents beside the archive (`<stem>.README.md`, `<stem>.preview.png`) that the sums
    files or the report list: each must be what they say (a missing one is a note: the archive is
    whole without it)."""
    problems, notes = [], []
    files = section(section(target.report, "outputs"), "tgz").get("files")
    entries = {f["path"]: f for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)} \
        if isinstance(files, list) else {}
    for name in FORMATS["tgz"].document_names(target.stem).values():
        said = {}
        for sums_name, digest_len in SUM_FILES.items():
            path = target.path.with_name(sums_name)
            try:
                line = read_sums(path, digest_len, only=name).get(name) if os.path.lexists(path) else None
            except UserError:  # (named by the sums files' own check)
                line = None
            if line is not None:
                said[sums_name] = line.lower()
        entry = entries.get(name, {})
        said.update({f"{target.report_path.name} {k}": str(entry[k]).lower() for k in ("bytes", "sha256", "md5")
                     if isinstance(entry.get(k), (str, int))})
        if not said:
            continue
        try:
            data = read_bytes(target.path.with_name(name), MAX_MEMBER_BYTES, "a document of the archive",
                              follow_symlinks=False)
        except FileNotFoundError:
            notes.append(f"{name}: listed, not beside the archive")
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: listed beside the archive, cannot be read: {exc}")
            continue
        got = Digests.of(data)
        actual = {"SHA256SUMS": got.sha256, "MD5SUMS": got.md5}
        actual.update({f"{target.report_path.name} {k}": v for k, v in
                       (("bytes", str(got.size)), ("sha256", got.sha256), ("md5", got.md5))})
        differ = [f"{k} says {clip(v)}, the file has {actual[k]}" for k, v in said.items() if actual[k] != v]
        if differ:
            problems.append(f"{name} is not the document listed: {'; '.join(differ)}")
    return problems, notes


def identity_level(target: Target, d: Digests, published: list[Published]) -> LevelResult:
    message, found = published_match_message(d, published)
    sums_problems, sums_notes, sums_data = _check_sums_files(target, d)
    report_problems, report_notes, report_state = _check_build_report(target, d)
    doc_problems, doc_notes = _check_documents(target)
    problems = sums_problems + report_problems + doc_problems
    report_notes = report_notes + doc_notes
    data = {"size": d.size, "sha256": d.sha256, "md5": d.md5, "md5_first_mib": d.md5_first_mib,
            "published_matches": [{"archive": r.archive, "uploaded": r.uploaded} for r in found],
            "published_message": message, "sums_files": sums_data, "build_report": report_state}
    summary = f"{d.size:,} bytes, sha256 {d.sha256[:16]}..., md5 of the first MiB {d.md5_first_mib}; {message}"
    return LevelResult("identity", not problems, summary, problems, sums_notes + report_notes, data)
