"""Audit the protocol data against the Trainer / Seq2SeqTrainer sources of every transformers release.

    python scripts/audit_protocol.py [--src DIR | --download VERSIONS|all] [--write] [--check]

For each release it lists every access to the model in trainer.py, trainer_seq2seq.py and trainer_optimizer.py
(by AST, see trainer_compat/protocol/audit.py) and fails (exit 1) on:

* an access whose member protocol/accesses.json does not classify (``file:line member (kind) in function``);
* a ``requirement`` entry of accesses.json that no REQUIREMENTS entry or rule Site covers;
* a REQUIREMENTS entry whose call site is present in a release its VersionRange excludes, or absent from one
  it includes;
* with ``--check``: protocol/lines.json or protocol/inventory.json differ from what the sources give.

``--src`` holds one directory per release (4.46.3/trainer.py, ...; default /work/tf-src when present).
``--download 4.57.6,5.24.0`` or ``--download all`` (every release >= 4.46.0 on PyPI) fetches the wheels with
``pip download --no-deps`` into ``--cache`` and reads the sources from them. ``--write`` regenerates
lines.json (scripts/record_site_lines.py) and inventory.json for the audited releases, keeping the entries of
releases not audited. Exit 2 with one line on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record_site_lines as site_lines  # lines.json: the one implementation, reused

from trainer_compat.forecast import LINES, module_file
from trainer_compat.protocol import audit
from trainer_compat.protocol.data import REQUIREMENTS
from trainer_compat.protocol.model import Requirement
from trainer_compat.versions import VersionRange

INVENTORY = audit.ACCESSES.with_name("inventory.json")
OLDEST = Version("4.46.0")
DEFAULT_SRC = Path("/work/tf-src")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "trainer-compat" / "transformers"
PYPI = "https://pypi.org/pypi/transformers/json"


class BadInput(Exception):
    """Exit 2 with this one line."""


@dataclass
class Result:
    version: Version
    accesses: list[audit.Access]
    unclassified: list[audit.Access] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    waived: list[str] = field(default_factory=list)
    off_site: list[audit.Access] = field(default_factory=list)  # requirement accesses on no Site's line
    lines: dict[str, list[object]] = field(default_factory=dict)


# ---------------------------------------------------------------- sources

def parse_versions(text: str) -> list[Version]:
    versions = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            version = Version(item)
        except InvalidVersion as exc:
            raise BadInput(f"--download: {item!r} is not a version") from exc
        if version < OLDEST:
            raise BadInput(f"--download: {item} is older than {OLDEST}, the oldest release audited")
        versions.append(version)
    if not versions:
        raise BadInput("--download: no version given")
    return sorted(set(versions))


def pypi_releases() -> list[Version]:
    """Every final release >= 4.46.0 that PyPI lists with a file that is not yanked."""
    try:
        with urllib.request.urlopen(PYPI, timeout=60) as response:
            releases = json.load(response)["releases"]
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"--download all: cannot list the releases on PyPI ({exc})") from exc
    found = []
    for text, files in releases.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if version >= OLDEST and not version.is_prerelease and any(not f.get("yanked") for f in files):
            found.append(version)
    return sorted(found)


def needed_files(sites: list) -> list[str]:
    modules = {m for s in sites for m in s.modules}
    return sorted(set(audit.FILES) | {f for f in map(module_file, modules) if f})


def fetch(version: Version, cache: Path, files: list[str]) -> Path:
    """The source directory of ``version`` in the cache, extracted from its wheel (downloaded once)."""
    root = cache / "src" / str(version)
    if (root / "trainer.py").is_file():
        return root
    wheels = cache / "wheels"
    wheel = next(wheels.glob(f"transformers-{version}-*.whl"), None)
    if wheel is None:
        command = [sys.executable, "-m", "pip", "download", f"transformers=={version}", "--no-deps",
                   "--only-binary", ":all:", "--quiet", "-d", str(wheels)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = next(wheels.glob(f"transformers-{version}-*.whl"), None)
        if done.returncode != 0 or wheel is None:
            last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise BadInput(f"--download: pip download transformers=={version} failed: {last}")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in files:
            if f"transformers/{name}" in names:
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(f"transformers/{name}"))
    return root


def sources(options: argparse.Namespace, sites: list) -> list[tuple[Version, Path]]:
    if options.download:
        versions = pypi_releases() if options.download == "all" else parse_versions(options.download)
        return [(v, fetch(v, options.cache, needed_files(sites))) for v in versions]
    src = options.src or (DEFAULT_SRC if DEFAULT_SRC.is_dir() else None)
    if src is None or not src.is_dir():
        raise BadInput(f"--src: {src or DEFAULT_SRC} is not a directory (give --src DIR or --download)")
    found = [(v, root) for v, root in site_lines.releases(src) if (root / "trainer.py").is_file()]
    if not found:
        raise BadInput(f"--src: {src} holds no <version>/trainer.py")
    return found


# ---------------------------------------------------------------- checks

def _contradiction(req: Requirement, version: Version, root: Path) -> tuple[str | None, str | None]:
    """(contradiction, unchecked): whether the site's presence in ``root`` agrees with ``req.versions``."""
    present = site_lines.line_of(req.site, root) is not None
    label = f"{req.member}[{req.versions}] /{req.site.pattern}/"
    if version in req.versions:
        if present:
            return None, None
        files = [module_file(m) for m in req.site.modules]
        if all(f is not None and (root / f).is_file() for f in files):
            return f"{version}: {label} has no call site, but the data says it applies", None
        return None, f"{version}: {label} absent from the files at hand ({', '.join(req.site.modules)})"
    other = any(o.member == req.member and version in o.versions for o in REQUIREMENTS)
    if present and not other:
        return f"{version}: {label} has a call site, but the data says only {req.versions}", None
    return None, None


def waivers() -> list[tuple[str, VersionRange, str]]:
    """Known site contradictions (accesses.json "waived"): reported, not failed, until data.py is fixed."""
    raw = json.loads(audit.ACCESSES.read_text(encoding="utf-8")).get("waived", [])
    return [(w["requirement"], VersionRange(w.get("since"), w.get("until")), w["reason"]) for w in raw]


def _waived(req: Requirement, version: Version) -> bool:
    label = f"{req.member}[{req.versions}]"
    return any(label == name and version in versions for name, versions, _ in waivers())


def audit_release(version: Version, root: Path, table: dict, sites: list) -> Result:
    result = Result(version, audit.release_accesses(root))
    result.unclassified = audit.unclassified(result.accesses, version, table)
    for req in REQUIREMENTS:
        contradiction, unchecked = _contradiction(req, version, root)
        if contradiction:
            (result.waived if _waived(req, version) else result.contradictions).append(contradiction)
        result.unchecked += [unchecked] if unchecked else []
    patterns = [s.pattern for s in sites]
    texts = {name: (root / name).read_text(encoding="utf-8").splitlines() for name in audit.FILES
             if (root / name).is_file()}
    for access in result.accesses:
        entry = audit.classify(access, version, table)
        if entry and entry.cls == "requirement" and not audit.site_on_line(
                access, texts[access.file][access.line - 1], patterns):
            result.off_site.append(access)
    result.lines = site_lines.record_release(sites, root)
    return result


# ---------------------------------------------------------------- generated data

def ranges(present: set[str], releases: list[str]) -> str:
    """Runs of consecutive releases: '4.46.0-4.57.6, 5.3.0'."""
    runs: list[list[str]] = []
    previous = False
    for release in releases:
        if release in present:
            if previous:
                runs[-1][1] = release
            else:
                runs.append([release, release])
        previous = release in present
    return ", ".join(a if a == b else f"{a}-{b}" for a, b in runs)


def expand(text: str, releases: list[str]) -> set[str]:
    out: set[str] = set()
    order = {r: i for i, r in enumerate(releases)}
    for run in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = run.partition("-")
        out.update(releases[order[first]: order[last or first] + 1])
    return out


_KEY = ("file", "function", "receiver", "member", "kind", "guard")


def inventory(results: list[Result], old: dict, table: dict) -> dict:
    """Per member, every distinct access with the releases it exists in (merged into ``old``)."""
    audited = {str(r.version) for r in results}
    releases = sorted(set(old.get("releases", [])) | audited, key=Version)
    seen: dict[tuple, set[str]] = defaultdict(set)
    for member, item in old.get("members", {}).items():
        for access in item["accesses"]:
            key = tuple(access[k] if k != "member" else member for k in _KEY)
            seen[key] |= expand(access["releases"], old["releases"]) - audited
    for result in results:
        for a in result.accesses:
            seen[(a.file, a.function, a.receiver, a.member, a.kind, a.guard)].add(str(result.version))
    members: dict[str, dict] = {}
    for key, present in sorted((k, v) for k, v in seen.items() if v):
        access = audit.Access(key[0], 0, key[1], key[2], key[3], key[4], key[5])
        classes = {(e.cls if (e := audit.classify(access, v, table)) else "UNCLASSIFIED") for v in present}
        item = members.setdefault(key[3], {"classes": set(), "present": set(), "accesses": []})
        item["classes"] |= classes
        item["present"] |= present
        item["accesses"].append({**dict(zip(_KEY, key, strict=True)), "releases": ranges(present, releases)})
    return {"source": "scripts/audit_protocol.py", "releases": releases, "members": {
        m: {"class": " | ".join(sorted(i["classes"])), "releases": ranges(i["present"], releases),
            "accesses": [{k: v for k, v in a.items() if k != "member"} for a in i["accesses"]]}
        for m, i in members.items()}}


def render_inventory(data: dict) -> str:
    """JSON with one line per access (short diffs when a release adds or drops one)."""
    members = []
    for member, item in data["members"].items():
        head = json.dumps({k: v for k, v in item.items() if k != "accesses"})[:-1]
        rows = ",\n   ".join(json.dumps(a) for a in item["accesses"])
        members.append(f' {json.dumps(member)}: {head}, "accesses": [\n   {rows}]}}')
    return (f'{{"source": {json.dumps(data["source"])},\n"releases": {json.dumps(data["releases"])},\n'
            f'"members": {{\n' + ",\n".join(members) + "\n}}\n")


def lines_data(results: list[Result], old: dict) -> dict:
    versions = dict(old.get("versions", {}))
    versions.update({str(r.version): r.lines for r in results})
    return {"source": "scripts/record_site_lines.py", "versions": versions}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def generated(results: list[Result], table: dict) -> dict[Path, str]:
    return {LINES: site_lines.render(lines_data(results, _load(LINES))),
            INVENTORY: render_inventory(inventory(results, _load(INVENTORY), table))}


# ---------------------------------------------------------------- report

def _grouped(results: list[Result], attr: str) -> dict[tuple, list[tuple[Version, audit.Access]]]:
    groups: dict[tuple, list[tuple[Version, audit.Access]]] = defaultdict(list)
    for result in results:
        for a in getattr(result, attr):
            groups[(a.file, a.function, a.member, a.kind)].append((result.version, a))
    return groups


def _print_accesses(title: str, groups: dict, releases: list[str]) -> None:
    print(f"{title}: {len(groups)}")
    for found in groups.values():
        version, last = found[-1]
        where = ranges({str(v) for v, _ in found}, releases)
        print(f"  {version}/{last.where()} [guard: {last.guard}; releases: {where}]")


def report(results: list[Result], table: dict, problems: list[str]) -> bool:
    releases = [str(r.version) for r in results]
    keys: dict[tuple, str] = {}
    for result in results:
        for a in result.accesses:
            entry = audit.classify(a, result.version, table)
            keys[(a.file, a.function, a.receiver, a.member, a.kind)] = entry.cls if entry else "UNCLASSIFIED"
    members: dict[str, set[str]] = defaultdict(set)
    for (_, _, _, member, _), cls in keys.items():
        members[cls].add(member)
    total = sum(len(r.accesses) for r in results)
    print(f"audited {len(results)} releases ({releases[0]} .. {releases[-1]}): {total} accesses, "
          f"{len(keys)} distinct (file, function, receiver, member, kind), "
          f"{len({k[3] for k in keys})} members")
    counts = Counter(keys.values())
    for cls in (*audit.CLASSES, "UNCLASSIFIED"):
        if counts[cls] or members[cls]:
            print(f"  {cls:22} {len(members[cls]):3} members {counts[cls]:4} distinct accesses")
    unchecked = sorted({u.split(": ", 1)[1] for r in results for u in r.unchecked})
    print(f"requirement sites not checkable in some releases (module not in the sources at hand): {len(unchecked)}")
    for line in unchecked:
        print(f"  {line}")
    _print_accesses("requirement-class accesses on no Site's line (review: covered by the member's entry)",
                    _grouped(results, "off_site"), releases)
    waived = [w for r in results for w in r.waived]
    for name, versions, reason in waivers():
        hits = [w for w in waived if f" {name} " in w]
        print(f"WAIVED {name} in {versions} ({len(hits)} releases): {reason}")
    contradictions = [c for r in results for c in r.contradictions]
    unclassified = _grouped(results, "unclassified")
    for line in problems + contradictions:
        print(f"FAIL {line}")
    if unclassified:
        _print_accesses("FAIL unclassified accesses (add them to trainer_compat/protocol/accesses.json)",
                        unclassified, releases)
    return not (problems or contradictions or unclassified)


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, help="one directory per release (default /work/tf-src)")
    parser.add_argument("--download", metavar="VERSIONS|all", help="comma-separated releases, or all")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"wheel and source cache (default {CACHE})")
    parser.add_argument("--write", action="store_true", help="regenerate lines.json and inventory.json")
    parser.add_argument("--check", action="store_true", help="fail when the generated files are stale")
    options = parser.parse_args(argv)
    if options.src and options.download:
        raise BadInput("give --src or --download, not both")
    return options


def run(options: argparse.Namespace) -> int:
    sites = site_lines.all_sites()
    table = audit.load_classification()
    covered = audit.covered_members({r.member for r in REQUIREMENTS}, [s.pattern for s in sites])
    problems = audit.invalid_entries(table, covered)
    results = [audit_release(v, root, table, sites) for v, root in sources(options, sites)]
    ok = report(results, table, problems)
    files = generated(results, table)
    if options.write:
        for path, text in files.items():
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if options.check:
        stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"FAIL {path} is stale: rerun scripts/audit_protocol.py --write")
        ok = ok and not stale
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except BadInput as exc:
        print(f"audit_protocol: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
