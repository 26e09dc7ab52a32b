#!/usr/bin/env python3
"""Renders chat-template golden files with Python jinja2, set up the way Hugging Face transformers does it.

The Java tests compare ChatTemplate's output with these files byte for byte, so this script mirrors
transformers' `_compile_jinja_template` / `render_jinja_template` (src/transformers/utils/chat_template_utils.py):
an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks, the loopcontrols extension and a
`{% generation %}` block tag, a `tojson` filter that is json.dumps(ensure_ascii=False, ...), and the globals
`raise_exception` and `strftime_now`. Template variables are the special tokens of tokenizer_config.json
(transformers' special_tokens_map), then messages, tools, documents, add_generation_prompt and the case's kwargs.

Usage (run from this directory; needs only jinja2 >= 3.1):
  python3 render_golden.py chat <model-dir>     renders <model-dir>/cases.json with the template of
                                                <model-dir>/tokenizer_config.json (or chat_template.jinja)
                                                into <model-dir>/expected/<case-name>.txt
  python3 render_golden.py snippets <dir>       renders every {name, template, context} of <dir>/snippets.json
                                                into <dir>/expected.json as {name: {"output": str} | {"error": type}}

A case may set "now" (ISO date-time) to fix what strftime_now sees, so golden files stay reproducible. A case the
template refuses (its raise_exception, or a Python error such as `in` on None) gets <case-name>.error instead, holding
"<exception type>: <message>".
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker as far as rendering goes: {% generation %}body{% endgeneration %} -> body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return now.strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_content(value):
    """tokenizer_config.json stores a special token as a string or as an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def special_tokens_map(config):
    tokens = {}
    for key in SPECIAL_TOKEN_KEYS:
        value = token_content(config.get(key))
        if value is not None:
            tokens[key] = value
    extra = [token_content(t) for t in config.get("additional_special_tokens") or []]
    if extra:
        tokens["additional_special_tokens"] = extra
    return tokens


def load_template(model_dir):
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.exists():
        return jinja_file.read_text(encoding="utf-8")
    template = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    if isinstance(template, list):
        template = next(t["template"] for t in template if t["name"] == "default")
    return template


def parse_now(case):
    return datetime.fromisoformat(case["now"]) if "now" in case else datetime(2025, 1, 15, 10, 30, 0)


def render_chat(model_dir):
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    template_source = load_template(model_dir)
    cases = json.loads((model_dir / "cases.json").read_text(encoding="utf-8"))
    out_dir = model_dir / "expected"
    out_dir.mkdir(exist_ok=True)
    for case in cases:
        template = make_environment(parse_now(case)).from_string(template_source)
        variables = dict(special_tokens_map(config))
        variables.update(
            messages=case["messages"],
            tools=case.get("tools"),
            documents=None,
            add_generation_prompt=case.get("add_generation_prompt", False))
        variables.update(case.get("kwargs", {}))
        try:
            text, suffix = template.render(**variables), ".txt"
        except Exception as e:  # the Java side must refuse it too, with the same message for raise_exception
            text, suffix = f"{type(e).__name__}: {e}", ".error"
        # newline="" keeps the bytes exactly as rendered (no platform newline translation).
        with open(out_dir / (case["name"] + suffix), "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"{model_dir.name}/{case['name']}{suffix}: {len(text)} chars")


def render_snippets(directory):
    directory = Path(directory)
    snippets = json.loads((directory / "snippets.json").read_text(encoding="utf-8"))
    results = {}
    for snippet in snippets:
        env = make_environment(parse_now(snippet))
        try:
            output = env.from_string(snippet["template"]).render(**snippet.get("context", {}))
            results[snippet["name"]] = {"output": output}
        except Exception as e:  # the Java side must fail too; the type is only informative
            results[snippet["name"]] = {"error": type(e).__name__}
    with open(directory / "expected.json", "w", encoding="utf-8", newline="") as f:
        json.dump(results, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(results)} snippets, {sum('error' in r for r in results.values())} expected errors")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("chat", "snippets"):
        sys.exit(__doc__)
    (render_chat if sys.argv[1] == "chat" else render_snippets)(sys.argv[2])
