"""Installs the files GraphiQL loads, so that the server serves them itself: ``python -m api.graphiql_assets``.

strawberry's GraphiQL page loads seven files from unpkg.com; without internet
access it stays a blank page that says "Loading...". ``tools/graphiql`` pins
the same packages at the same versions (``package.json`` and its lock file);
this command installs them with ``npm ci`` (unless ``node_modules`` already
holds the pinned versions, as in the Dockerfile's build stage) and copies the
seven files, with each package's licence, into ``api/static/graphiql/``
(git-ignored), laid out like the CDN's URLs: ``<package>@<version>/<path>``.
:mod:`api.graphiql` serves them when all are there, byte for byte what the
page's integrity hashes expect, and falls back to the CDN otherwise.

Only the standard library is used: the Docker build runs this before the
project's dependencies are installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOL_DIR = HERE.parent / "tools" / "graphiql"
STATIC_DIR = HERE / "static" / "graphiql"

# The files strawberry's page (strawberry/static/graphiql.html) loads, by package.
FILES = {
    "react": ["umd/react.production.min.js"],
    "react-dom": ["umd/react-dom.production.min.js"],
    "js-cookie": ["dist/js.cookie.min.js"],
    "graphiql": ["graphiql.min.js", "graphiql.min.css"],
    "@graphiql/plugin-explorer": ["dist/index.umd.js", "dist/style.css"],
}

_TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_INTEGRITY = re.compile(r"""\bintegrity\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_CDN = re.compile(r"^https://(?:unpkg\.com|cdn\.jsdelivr\.net/npm)/((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)$")


@dataclass(frozen=True)
class CdnFile:
    """One file a page loads from an npm CDN: ``url`` is exactly as the page spells it."""

    url: str
    package: str | None  # None: a URL that isn't a package file on a known CDN
    version: str | None
    path: str | None
    integrity: str | None

    @property
    def local_path(self) -> str:
        """Where the file is under the static folder (and under ``/graphiql/assets/``)."""
        return f"{self.package}@{self.version}/{self.path}"


def cdn_files(html: str) -> list[CdnFile]:
    """Every script and stylesheet the page loads from another host."""
    found = []
    for tag in _TAG.findall(html):
        url = _URL.search(tag)
        if url is None or not url.group(1).startswith(("http://", "https://", "//")):
            continue
        integrity = _INTEGRITY.search(tag)
        match = _CDN.match(url.group(1))
        package, version, path = match.groups() if match else (None, None, None)
        found.append(CdnFile(url.group(1), package, version, path, integrity.group(1) if integrity else None))
    return found


def sri(data: bytes, algorithm: str = "sha384") -> str:
    """The Subresource Integrity value of ``data``, as in an ``integrity`` attribute."""
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def matches_integrity(data: bytes, integrity: str | None) -> bool:
    """Whether a browser would accept ``data`` under this ``integrity`` attribute (any listed hash)."""
    if not integrity:
        return True
    wanted = integrity.split()
    return any(
        sri(data, value.split("-", 1)[0]) == value
        for value in wanted
        if value.split("-", 1)[0] in ("sha256", "sha384", "sha512")
    )


def pinned_versions(tool_dir: Path = TOOL_DIR) -> dict[str, str]:
    return json.loads((tool_dir / "package.json").read_text())["devDependencies"]


def _installed_version(node_modules: Path, package: str) -> str | None:
    manifest = node_modules / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


def npm_ci(tool_dir: Path = TOOL_DIR) -> None:
    """``npm ci`` in ``tool_dir``, unless ``node_modules`` already holds every pinned version."""
    node_modules = tool_dir / "node_modules"
    if all(_installed_version(node_modules, name) == version for name, version in pinned_versions(tool_dir).items()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"npm is needed to install GraphiQL's files (npm ci in {tool_dir}); install Node.js.")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=tool_dir, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"npm ci in {tool_dir} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def licence_text(node_modules: Path, package: str) -> str:
    """The package's LICENSE file, then those of the dependencies its bundle may include.

    A package published without one (``@graphiql/plugin-explorer``) gets the
    LICENSE of the package from the same repository (its monorepo, here graphiql's).
    """

    def own(name: str) -> Path | None:
        folder = node_modules / name
        if not folder.is_dir():  # a dependency npm nested under its dependant
            folder = node_modules / package / "node_modules" / name
        files = sorted(p for p in folder.glob("*") if p.name.upper().startswith(("LICENSE", "LICENCE")))
        return files[0] if files else None

    def repository(name: str) -> str | None:
        manifest = json.loads((node_modules / name / "package.json").read_text())
        repo = manifest.get("repository")
        url = (repo.get("url") if isinstance(repo, dict) else repo) or ""
        # "git+https://github.com/x/y.git" and "http://github.com/x/y" are one repository
        return re.sub(r"^(?:git\+)?\w+://|\.git$|/$", "", url) or None

    manifest = json.loads((node_modules / package / "package.json").read_text())
    first = own(package)
    if first is None:
        sibling = next(
            (other for other in FILES if other != package and own(other) and repository(other) == repository(package)),
            None,
        )
        if sibling is None:
            raise SystemExit(f"{package} has no LICENSE file, nor does any package from its repository.")
        first = own(sibling)
        header = (
            f"{package}@{manifest['version']} is published without a LICENSE file; its licence "
            f"({manifest.get('license')}) is that of its repository, {repository(package)}:\n\n"
        )
    else:
        header = ""
    assert first is not None  # own(package), or else own(sibling), which next() checked
    parts = [header + first.read_text()]
    for dependency in sorted(manifest.get("dependencies", {})):
        path = own(dependency)
        if path is not None:
            parts.append(f"--- {dependency}, a dependency of {package} ---\n\n" + path.read_text())
    return "\n\n".join(parts)


def copy_files(
    node_modules: Path = TOOL_DIR / "node_modules", static_dir: Path = STATIC_DIR, tool_dir: Path = TOOL_DIR
) -> list[str]:
    """Copies the pinned files and licences into ``static_dir`` (replacing what was there);
    returns the paths copied, relative to it."""
    pinned = pinned_versions(tool_dir)
    staging = static_dir.with_name(static_dir.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    copied = []
    for package, paths in FILES.items():
        version = _installed_version(node_modules, package)
        if version != pinned.get(package):
            raise SystemExit(f"{package}: {node_modules} holds {version}, tools/graphiql pins {pinned.get(package)}.")
        target = staging / f"{package}@{version}"
        for path in paths:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(node_modules / package / path, target / path)
            copied.append(f"{package}@{version}/{path}")
        (target / "LICENSE").write_text(licence_text(node_modules, package))
        copied.append(f"{package}@{version}/LICENSE")
    _check_against_strawberry(staging)
    shutil.rmtree(static_dir, ignore_errors=True)
    staging.rename(static_dir)
    return copied


def _check_against_strawberry(static_dir: Path) -> None:
    """When strawberry is installed, refuses a copy its page couldn't use (another version, or
    other bytes than its integrity hashes), so the mismatch shows here and not as a CDN fallback."""
    try:
        from strawberry.http.ides import get_graphql_ide_html
    except ImportError:
        return
    for file in cdn_files(get_graphql_ide_html("graphiql")):
        local = static_dir / file.local_path if file.package else None
        if local is None or not local.is_file():
            raise SystemExit(
                f"strawberry's GraphiQL page loads {file.url}, which tools/graphiql and "
                f"api/graphiql_assets.py FILES don't provide: update them to match."
            )
        if not matches_integrity(local.read_bytes(), file.integrity):
            raise SystemExit(f"{file.local_path} doesn't match the integrity hash strawberry's page expects.")


def main() -> None:
    npm_ci()
    copied = copy_files()
    print(
        f"GraphiQL's files ({len(copied)}, with licences) are in {STATIC_DIR}; "
        f"the server serves them under /graphiql/assets/."
    )


if __name__ == "__main__":
    main()
