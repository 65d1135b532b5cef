"""PDF text quality: aws-docs-qa pages printed to PDF by Chromium, read back by chatpad-extract.

Chromium's PDFs are what most "save as PDF" files look like: subset TrueType fonts as Type 0
(Identity-H, a ToUnicode map), words placed by offsets rather than space glyphs, justified
lines. Each page's source text is the truth; printed: the share of its words the extractor
recovers and the share of its word pairs (two words in a row) recovered in order — glued or
split words lose pairs. Usage: pdf_quality.py EXTRACT_BINARY [PAGES] (release build of
chatpad-extract; Chromium at /usr/bin/chromium, as the widget's browser tests use).
"""

import collections
import html
import json
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared/evalsets/aws-docs-qa/corpus.jsonl"


def words(text):
    return re.findall(r"\S+", text.replace("#", ""))


def recovered(found, truth):
    """Share of the multiset `truth` present in `found`."""
    return sum((found & truth).values()) / max(1, sum(truth.values()))


def page_html(title, text, serif):
    blocks = []
    for line in filter(str.strip, text.split("\n")):
        tag = "h2" if line.startswith("#") else "p"
        blocks.append(f"<{tag}>{html.escape(line.lstrip('# '))}</{tag}>")
    css = "body{font-family:serif;margin:2cm} p{text-align:justify}" if serif else "body{font-family:sans-serif}"
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{css}</style><h1>{html.escape(title)}</h1>{''.join(blocks)}")


def main():
    extract = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    pages = [json.loads(line) for line in CORPUS.open()]
    # The longest pages (several PDF pages each), every other one.
    pages = sorted(pages, key=lambda p: -len(p["text"]))[: 2 * count : 2]
    word_scores, pair_scores = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n, page in enumerate(pages):
            source = pathlib.Path(tmp, f"{n}.html")
            pdf = pathlib.Path(tmp, f"{n}.pdf")
            source.write_text(page_html(page["title"], page["text"], serif=n % 2 == 1))
            subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                            f"--print-to-pdf={pdf}", "--no-pdf-header-footer", source.as_uri()],
                           check=True, capture_output=True, timeout=120)
            out = subprocess.run([extract, str(pdf), "pdf"], check=True, capture_output=True,
                                 text=True, timeout=120).stdout
            # Drop chatpad-extract's own lines (title, part headers).
            out = re.sub(r"^(title: .*|--- \{.*\})$", "", out, flags=re.M)
            found, truth = words(out), words(page["title"]) + words(page["text"])
            word_scores.append(recovered(collections.Counter(found), collections.Counter(truth)))
            pair_scores.append(recovered(collections.Counter(zip(found, found[1:])),
                                         collections.Counter(zip(truth, truth[1:]))))
    print(f"pdf text quality: {len(pages)} aws-docs-qa pages printed by Chromium: words recovered "
          f"{sum(word_scores) / len(pages):.3f} (worst {min(word_scores):.3f}), word pairs in order "
          f"{sum(pair_scores) / len(pages):.3f} (worst {min(pair_scores):.3f})")


if __name__ == "__main__":
    main()
