"""`protocol-gateway templates check | preview | list`: the template workshop."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs: `protocol-gateway --help` need not load Jinja2
    from gateway.config import Settings
    from gateway.rendering.templates import Templates

CHECK_HELP = """\
Renders every template, in every locale and channel, with the samples its template.toml
ships, and looks in the output for what the audience must be shown.

Output: one line per finding, `FILE[:LINE]: LEVEL: MESSAGE` (LEVEL is error, warning or
info; FILE is relative to the templates folder), then a summary line. --format json gives
{"ok", "strict", "summary", "findings": [...], "sms": [...]} instead.

Exit status: 0 no errors (warnings allowed unless --strict), 1 errors (or warnings with
--strict), 2 usage or settings problem (no such folder or template, a wrong setting).
"""


def _templates(settings: Settings, folder: Path | None) -> Templates:
    from gateway.rendering.templates import Templates

    return Templates(folder.resolve() if folder else settings.templates_dir, settings.gateway.default_locale,
                     sms_transliterate=settings.sms.transliterate)


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.rendering.check import EXIT_USAGE, CheckUsageError, check_templates

    settings = args.settings
    try:
        report = check_templates(_templates(settings, args.dir), max_segments=settings.sms.max_segments,
                                 names=args.names or None)
    except CheckUsageError as exc:
        print(f"templates check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(report.as_dict(strict=args.strict), ensure_ascii=False, indent=2))
    else:
        for finding in report.findings:
            if not (args.quiet and finding.level == "info"):
                print(finding.text())
        print(report.summary(strict=args.strict))
    return report.exit_code(strict=args.strict)


def cmd_preview(args: argparse.Namespace) -> int:
    from gateway.rendering.check import EXIT_ERRORS, EXIT_OK, EXIT_USAGE
    from gateway.rendering.preview import PreviewDataError, load_data, preview
    from gateway.rendering.templates import TemplateError, TemplateNotFoundError

    settings = args.settings
    templates = _templates(settings, args.dir)
    try:
        data = load_data(args.data) if args.data else None
        result = preview(templates, args.name, locale=args.locale, channel=args.channel, data=data,
                         max_segments=settings.sms.max_segments)
    except PreviewDataError as exc:
        print(f"templates preview: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TemplateNotFoundError as exc:
        print(f"templates preview: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.file == args.name else EXIT_ERRORS
    except TemplateError as exc:
        print(f"{exc.file}{f':{exc.line}' if exc.line else ''}: error: {exc.message}", file=sys.stderr)
        return EXIT_ERRORS
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(_preview_text(result))
    return EXIT_OK


def _preview_text(result: dict[str, Any]) -> str:
    lines = [f"template {result['template']} ({result['audience']}), locale {result['locale']}"
             + (f" (asked {result['requested_locale']})" if result["requested_locale"] != result["locale"] else "")]
    if email := result["email"]:
        lines += [f"=== email {email['hash']}", f"Subject: {email['subject']}", "--- text", email["text"].rstrip("\n"),
                  "--- html", email["html"].rstrip("\n")]
    if sms := result["sms"]:
        def info(i: dict[str, Any]) -> str:
            return f"{i['encoding']}, {i['segments']} segment{'s' if i['segments'] != 1 else ''} ({i['units']} units)"

        other = (f"as written: {info(sms['as_written'])}" if sms["transliterate"]
                 else f"transliterated: {info(sms['transliterated'])}")
        lines += [f"=== sms {sms['hash']}: {info(sms)}{' (transliterated)' if sms['transliterate'] else ''}; {other}",
                  sms["text"]]
    if whatsapp := result.get("whatsapp"):
        how = (f"an approved template, {whatsapp['content_sid'] or 'no content_sid for this locale yet'}"
               if whatsapp["kind"] == "template" else "free text, inside the 24-hour window only")
        lines += [f"=== whatsapp {whatsapp['hash']}: {whatsapp['characters']} of {whatsapp['limit']:,} characters; "
                  f"outside the window: {how}", whatsapp["text"]]
        if whatsapp["kind"] == "template":
            lines += ["--- variables: " + json.dumps(whatsapp["variables"], ensure_ascii=False),
                      "--- the body to submit for approval", whatsapp["approval_text"] or ""]
    lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from gateway.rendering.check import EXIT_OK
    from gateway.rendering.preview import describe

    settings = args.settings
    templates = _templates(settings, args.dir)
    rows = [describe(templates, name) for name in templates.names()]
    if args.format == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{'NAME':<24} {'AUDIENCE':<11} {'CHANNELS':<19} LOCALES")
    for row in rows:
        print(f"{row['name']:<24} {row['audience'] or '?':<11} {','.join(row['channels']):<19} {','.join(row['locales'])}"
              + (f"  ({row['error']})" if "error" in row else ""))
    return EXIT_OK


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("templates", parents=[common], help="check, preview and list message templates")
    actions = parser.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--dir", type=Path, metavar="DIR", help="a templates folder (default: templates.dir)")
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=("text", "json"), default="text")

    check = actions.add_parser("check", parents=[common, folder, fmt], help="render every template with its samples",
                               description=CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("names", nargs="*", metavar="NAME", help="only these templates (default: all)")
    check.add_argument("--strict", action="store_true", help="warnings fail too (exit status 1)")
    check.add_argument("-q", "--quiet", action="store_true", help="leave out info lines")
    check.set_defaults(func=cmd_check)

    show = actions.add_parser("preview", parents=[common, folder, fmt],
                              help="render one template as the consumer would get it")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--locale", help="default: the sample's locale")
    show.add_argument("--channel", choices=("email", "sms", "whatsapp"), help="default: every channel the locale has")
    show.add_argument("--data", type=Path, metavar="FILE",
                      help="JSON or TOML merged over the template's [sample]; RFC 3339 strings become date-times")
    show.set_defaults(func=cmd_preview)

    listing = actions.add_parser("list", parents=[common, folder, fmt], help="templates, audiences, channels, locales")
    listing.set_defaults(func=cmd_list)
