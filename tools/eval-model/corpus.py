"""The evaluation model's text: the reStructuredText sources of the Python 3.11 documentation that Debian's
python3.11-doc package ships (/usr/share/doc/python3.11/html/_sources), reduced to plain ASCII prose.

The split is by file and deterministic: files are taken in sorted path order and every HELD_OUT_EVERY-th one is
held out, so no paragraph of the held-out text was seen in training; the held-out text is then cut at a paragraph
boundary to at most HELD_OUT_BYTES, small enough to commit.
"""
import os
import re
import sys
import unicodedata

SOURCES = "/usr/share/doc/python3.11/html/_sources"
# Prose-heavy parts of the documentation; c-api and distutils are mostly signatures.
PARTS = ["tutorial", "howto", "faq", "reference", "using", "library", "glossary.rst.txt"]
HELD_OUT_EVERY = 10
HELD_OUT_BYTES = 256 * 1024

_ROLE = re.compile(r":[\w:+-]+:`~?!?([^`<]*?)(?:\s*<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]*?)\s*<[^>]*>`_+")
_MARK = re.compile(r"``|`|\*\*|(?<!\w)\*(?=\w)|(?<=\w)\*(?!\w)")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}\s*$")


def files():
    out = []
    for part in PARTS:
        path = os.path.join(SOURCES, part)
        if os.path.isfile(path):
            out.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs.sort()
            out.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".rst.txt"))
    return sorted(out)


def clean(text):
    """Plain ASCII prose from reST: roles and links become their text, directives and heading rules go."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    # Printable ASCII, tab and newline only: then Python's regex splits exactly as the Java tokenizer's does.
    text = "".join(c for c in text if c in "\n\t" or " " <= c <= "~")
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. ") or stripped == ".." or _UNDERLINE.match(stripped):
            continue
        if stripped.startswith(":") and stripped.count(":") >= 2 and not stripped.startswith(":ref:"):
            continue  # a directive's field, e.g. :synopsis:
        line = _ROLE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        line = _MARK.sub("", line)
        lines.append(line.rstrip())
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def split():
    """(train text, held-out text, train files, held-out files)."""
    train, held, train_files, held_files = [], [], [], []
    for i, path in enumerate(files()):
        with open(path, encoding="utf-8") as f:
            body = clean(f.read())
        rel = os.path.relpath(path, SOURCES)
        if i % HELD_OUT_EVERY == HELD_OUT_EVERY // 2:
            held.append(body)
            held_files.append(rel)
        else:
            train.append(body)
            train_files.append(rel)
    held_text = "\n".join(held)
    if len(held_text) > HELD_OUT_BYTES:
        cut = held_text.rfind("\n\n", 0, HELD_OUT_BYTES)
        held_text = held_text[:cut + 1]
    return "\n".join(train), held_text, train_files, held_files


def calibration(n_bytes):
    """The first n_bytes of the training text, cut at a paragraph: text the techniques that rank experts (pruning,
    mixed precision) may measure routing on without seeing the held-out text they are judged on."""
    train = split()[0]
    cut = train.rfind("\n\n", 0, n_bytes)
    return train[:cut + 1]


if __name__ == "__main__":
    # python3 corpus.py --calibration FILE [BYTES]: writes calibration text (default 256 KiB of the training split).
    if len(sys.argv) >= 3 and sys.argv[1] == "--calibration":
        with open(sys.argv[2], "w", encoding="ascii") as out:
            out.write(calibration(int(sys.argv[3]) if len(sys.argv) > 3 else 256 * 1024))
    else:
        tr, ho, tf, hf = split()
        print(len(tr), len(ho), len(tf), len(hf))
        print(ho[:3000])
