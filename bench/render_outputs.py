"""`python -m bench.render_outputs OUT.json`: every message the shipped templates can write, for
comparing two trees byte for byte after a change meant to make rendering cheaper.

    python -m bench.render_outputs /tmp/before.json          # in the tree before the change
    python -m bench.render_outputs /tmp/after.json           # and after it
    cmp /tmp/before.json /tmp/after.json                     # no output: every message is the same
    python -m bench.render_outputs --folder DIR OUT.json     # another templates folder

It renders every template, locale and channel with each of its manifest's samples, and each of
those under the 16 ways the consumer may ask for the history (reply by email, text us, write
to an address, visit a site: each there or not), with `fallback=False` so that an error shows
as an error. The JSON maps "template/locale/channel/sample/ways" to [subject, text, html] (an
SMS also to its text with `sms.transliterate` on and its counts, written and transliterated),
or to the error's text. Not compared: WhatsApp's template variables, and the content hashes,
which follow the files' bytes. Nothing is timed: `python -m bench.render` times an opening.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from bench.progress import say
from gateway.rendering.templates import TemplateError, Templates

SHIPPED = Path(__file__).resolve().parent.parent / "gateway" / "templates"
WAYS = [{"reply": reply, "sms_number": sms, "email": email, "website": site, "textable": sms is not None}
        for reply, sms, email, site in itertools.product((True, False), ("+5511999999999", None),
                                                          ("sac@example.com", None), ("sac.example.com", None))]


def outputs(folder: Path) -> dict[str, Any]:
    templates = Templates(folder, "pt-BR")
    transliterating = Templates(folder, "pt-BR", sms_transliterate=True)  # sms.transliterate = true
    out: dict[str, Any] = {}
    for name in templates.names():
        manifest = templates.manifest(name)
        for locale in templates.locales(name):
            for channel in templates.channels(name, locale):
                for sample_name, sample in [("sample", manifest.sample), *manifest.samples.items()]:
                    for n, ways in enumerate(WAYS):
                        context = dict(sample)
                        if "ask" in context:
                            context["ask"] = {**context["ask"], **ways}
                        key = f"{name}/{locale}/{channel}/{sample_name}/{n}"
                        try:
                            out[key] = _message(templates, transliterating, name, channel, locale, context)
                        except TemplateError as exc:
                            out[key] = f"error: {exc}"
    return out


def _message(templates: Templates, transliterating: Templates, name: str, channel: str, locale: str,
             context: dict[str, Any]) -> list[Any]:
    """[subject, text, html]; an SMS also transliterated, with its counts both ways (encoding,
    units, segments). Not the content hash: it follows the files' bytes, which any edit changes."""
    r = templates.render(name, channel, locale, context, fallback=False)  # type: ignore[arg-type]
    if channel != "sms":
        return [r.subject, r.text, r.html]
    t = transliterating.render(name, channel, locale, context, fallback=False)  # type: ignore[arg-type]
    counts = [[i.encoding, i.units, i.segments] for i in (r.sms_written, r.sms_transliterated) if i is not None]
    return [r.subject, r.text, r.html, t.text, counts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.render_outputs", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="where the JSON goes")
    p.add_argument("--folder", type=Path, default=SHIPPED, help="templates folder (default: the shipped one)")
    args = p.parse_args(argv)
    rendered = outputs(args.folder)
    args.out.write_text(json.dumps(rendered, sort_keys=True, ensure_ascii=False, indent=0), encoding="utf-8")
    errors = sum(isinstance(v, str) for v in rendered.values())
    say(f"{len(rendered)} messages ({errors} errors) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
