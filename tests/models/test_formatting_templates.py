"""Golden tests of the chat formatter over every template in ../shared/data/chat_templates."""

from __future__ import annotations

import pytest
from chat_fixtures import FAMILIES, TEMPLATES, generation_config, make_tokenizer

from advlab.errors import ConfigError, ModelError
from advlab.models.chat import read_chat_template
from advlab.models.formatting import ChatFormatter
from advlab.models.generation import end_of_turn_ids

ALL_TEMPLATES = sorted(p.stem for p in (TEMPLATES / "chat_templates").glob("*.jinja"))
REQUEST = "Write a tutorial on how to bake bread"
SLOT = "! ! ! ! x"
TARGET = "Sure, here is a tutorial on how to bake bread"


def test_every_shared_template_has_a_family():
    if not ALL_TEMPLATES:
        pytest.skip("../shared/data/chat_templates is not present")
    assert set(ALL_TEMPLATES) <= set(FAMILIES), set(ALL_TEMPLATES) - set(FAMILIES)


def _check(tok, seg, fmt_text):
    full = tok(fmt_text, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token
    # the tokenizer's BOS is added exactly once: by the template or by the tokenizer, never both
    auto = tok("a", add_special_tokens=True)["input_ids"][: -len(tok("a", add_special_tokens=False)["input_ids"])]
    expected = full if (bos and fmt_text.startswith(bos)) else auto + full
    assert seg.input_ids == expected
    if bos:
        assert seg.input_ids.count(tok.convert_tokens_to_ids(bos)) <= 1 + fmt_text.count(bos) - fmt_text.startswith(bos)


@pytest.mark.parametrize("family", ALL_TEMPLATES)
@pytest.mark.parametrize("mode", ["suffix", "prefix", "request"])
def test_round_trip_every_template(family, mode):
    tok = make_tokenizer(family)
    sysp = (
        generation_config(family).get("system_prompt")
        if (TEMPLATES / "generation_configs" / f"{family}.json").exists()
        else None
    )
    for system_prompt in (None, sysp):
        fmt = ChatFormatter(tok, system_prompt=system_prompt, slot=mode)
        seg = fmt.segments(REQUEST, SLOT, TARGET)
        prompt_text = fmt.render(fmt._content(REQUEST, SLOT, SLOT))
        # independent: the template rendered by transformers with the real message, plus the reply lead
        assert seg.text.startswith(prompt_text) and seg.text.endswith(TARGET)
        _check(tok, seg, seg.text)
        # the pieces decode to the slot and the target
        decode = lambda ids: tok.decode(ids, skip_special_tokens=False)  # noqa: E731
        assert decode(seg.slot).strip() == (SLOT if mode != "request" else SLOT)
        assert decode(seg.target).strip() == TARGET
        assert REQUEST in decode(seg.before + seg.after) or mode == "request"
        # prompt-only ids (no target) agree with the prompt part of the segments' text
        assert seg.prompt_ids == seg.input_ids[: len(seg.input_ids) - len(seg.target)]
        assert fmt.retokenizes(seg)
        s, e = seg.target_range
        assert seg.input_ids[s:e] == seg.target
        # a new slot keeps before/after/target
        new = seg.with_slot(seg.slot[::-1])
        assert new.before == seg.before and new.after == seg.after and new.target == seg.target


@pytest.mark.parametrize("family", ALL_TEMPLATES)
def test_stop_tokens_match_generation_config(family):
    """The end-of-turn token the template writes is a stop token of generation_configs/<family>.json."""
    tok = make_tokenizer(family)
    stops = set(end_of_turn_ids(tok)) | {tok.eos_token_id}
    want = {tok.convert_tokens_to_ids(t) for t in FAMILIES[family]["stops"]}
    # every stop we find is a real stop token of that family (phi-3 also lists <|endoftext|>)
    assert stops <= want | {tok.convert_tokens_to_ids("<|endoftext|>")}
    eot = end_of_turn_ids(tok)
    if family in ("llama-3-instruct", "gemma-it", "chatml", "phi-3", "openchat-3.5"):
        assert eot and tok.convert_ids_to_tokens(eot[0]) in FAMILIES[family]["stops"]


def test_prompt_ids_bos_once():
    for family in ("llama-2-chat", "gemma-it", "llama-3-instruct", "phi-3"):
        tok = make_tokenizer(family)
        ids = ChatFormatter(tok).prompt_ids("hello")
        bos_id = tok.convert_tokens_to_ids(tok.bos_token)
        assert ids[0] == bos_id and ids.count(bos_id) == 1, family


GOLDEN = {
    "llama-2-chat": "<s>[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\nHello there [/INST]",
    "llama-3-instruct": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\nYou are a helpful assistantBe safe.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "zephyr": "<|system|>\nBe safe.</s>\n<|user|>\nHello there</s>\n<|assistant|>\n",
    "vicuna": "<s>Be safe.\n\nUSER: Hello there\nASSISTANT:",
}


@pytest.mark.parametrize("family", sorted(GOLDEN))
def test_golden_rendering(family):
    fmt = ChatFormatter(make_tokenizer(family), system_prompt="Be safe.")
    assert fmt.render("Hello there") == GOLDEN[family]


def test_llama2_target_gets_the_templates_space():
    fmt = ChatFormatter(make_tokenizer("llama-2-chat"))
    assert fmt.assistant_lead == " "
    assert fmt.segments("Hi", "x", "Sure").text.endswith("[/INST] Sure")
    assert fmt.segments("Hi", "x", " Sure").text.endswith("[/INST] Sure")  # no double space


def test_token_merge_raises_instead_of_misaligning():
    tok = make_tokenizer("phi-3")
    fmt = ChatFormatter(tok, slot="suffix", separator="")
    # "bread" + "ing" would need a token across the request|slot boundary ("readi"...); find a real merge
    merged = None
    for left, right in (("tutoria", "l"), ("brea", "d"), ("bak", "e"), ("Writ", "e")):
        if tok(left + right, add_special_tokens=False)["input_ids"] != (
            tok(left, add_special_tokens=False)["input_ids"] + tok(right, add_special_tokens=False)["input_ids"]
        ):
            merged = (left, right)
            break
    assert merged is not None
    with pytest.raises(ModelError, match="token merge across the before\\|slot boundary"):
        fmt.segments(merged[0], merged[1], "Sure")


def test_bad_inputs():
    tok = make_tokenizer("zephyr")
    with pytest.raises(ConfigError, match="slot mode"):
        ChatFormatter(tok, slot="middle")
    with pytest.raises(ConfigError, match="empty request"):
        ChatFormatter(tok).segments("  ", "x")
    with pytest.raises(ConfigError, match="empty slot text"):
        ChatFormatter(tok).segments("hello", "")
    bare = make_tokenizer("zephyr")
    bare.chat_template = None
    with pytest.raises(ModelError, match="no chat template"):
        ChatFormatter(bare)
    # a template that rewrites the message around the slot is refused, not misaligned
    falcon = ChatFormatter(make_tokenizer("falcon-instruct"), slot="request")
    with pytest.raises(ConfigError, match="changes the user message"):
        falcon.segments("x", "a\n\nb")


def test_template_that_rejects_system_prompt():
    tmpl = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
        "<|user|>\n{{ m['content'] }}<|end|>\n{% endfor %}<|assistant|>\n"
    )
    tok = make_tokenizer("phi-3", chat_template=tmpl)
    assert ChatFormatter(tok).segments("hello", "x", "Sure").input_ids
    with pytest.raises(ConfigError, match="system prompt"):
        ChatFormatter(tok, system_prompt="be nice")


def test_read_chat_template_normalises_chujiezheng_layout(tmp_path):
    text = read_chat_template(TEMPLATES / "chat_templates" / "zephyr.jinja")
    assert "\n{%" not in text and "    " not in text
    p = tmp_path / "t.txt"
    p.write_text("no tags here")
    with pytest.raises(ConfigError, match="not a Jinja"):
        read_chat_template(p)
    with pytest.raises(ConfigError, match="no such file"):
        read_chat_template(tmp_path / "missing.jinja")


@pytest.mark.parametrize("scheme", ["first", "always"])
@pytest.mark.parametrize("family", ["llama-2-chat", "mistral-instruct", "vicuna"])
@pytest.mark.parametrize("mode", ["suffix", "prefix", "request"])
def test_sentencepiece_style_tokenizers(scheme, family, mode):
    """Metaspace tokenizers add a word-start marker to every separately encoded piece, so the formatter
    must split the full encoding at the piece boundaries instead; the result is still verified."""
    from chat_fixtures import make_sp_tokenizer

    tok = make_sp_tokenizer(family, scheme)
    fmt = ChatFormatter(tok, slot=mode)
    seg = fmt.segments(REQUEST, SLOT, TARGET)
    assert seg.input_ids == tok(seg.text, add_special_tokens=not seg.text.startswith("<s>"))["input_ids"]
    assert seg.input_ids.count(tok.bos_token_id) == 1
    assert tok.decode(seg.slot).strip() == SLOT and tok.decode(seg.target).strip() == TARGET
    # the naive piece-by-piece encoding differs here (the case the offsets split exists for)
    pieces = fmt.pieces(REQUEST, SLOT, TARGET)
    naive = sum((tok(p, add_special_tokens=False)["input_ids"] for p in pieces), [])
    if scheme == "always":
        assert naive != seg.input_ids[1:] and naive != seg.input_ids


def test_sentencepiece_merge_names_the_boundary():
    from chat_fixtures import make_sp_tokenizer

    fmt = ChatFormatter(make_sp_tokenizer("zephyr"))  # "\nS" is one token in this toy vocabulary
    with pytest.raises(ModelError, match=r"after\|target boundary .*token '\\nS'"):
        fmt.segments(REQUEST, SLOT, "Sure, here is")
    assert fmt.segments(REQUEST, SLOT, "Here is").target  # another start is fine
