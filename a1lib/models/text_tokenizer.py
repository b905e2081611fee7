"""The text tokenizer: instruction / question words -> token ids.

The original reuses Qwen3-VL's 150k-token BPE vocabulary. Our language is tiny and closed: the
instruction templates of the ten tasks (with every colour / object / side filled in) and the
scene questions and answers (``a1lib.data.scene_qa``). A word-level vocabulary covers it exactly,
keeps one token per word (short sequences, readable ids), and maps an unseen word to ``[UNK]``.

    "Put the red bolt in the bin."  -> lower-case -> split words and punctuation
    -> [BOS] put the red bolt in the bin . [EOS]

It is built with the ``tokenizers`` library (normaliser + pre-tokeniser + WordLevel model +
a post-processor adding [BOS]/[EOS], or [BOS] a [SEP] b [EOS] for pairs), saved as
``tokenizer.json`` and loaded as a ``transformers.PreTrainedTokenizerFast``, so the usual
``tok(texts, padding=True, return_tensors="pt")`` works. Special tokens, in id order:
``[PAD]=0 [UNK]=1 [BOS]=2 [EOS]=3 [SEP]=4``.

The WordLevel trainer assigns word ids by descending frequency (ties broken by the word), so the
same corpus always gives the same tokenizer.json bytes.
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers import PreTrainedTokenizerFast

from a1lib.data.scene_qa import qa_corpus
from a1lib.io import atomic_write
from a1lib.sim.tasks import TASKS
from a1lib.sim.world import COLOR_NAMES, KIND_NAMES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[SEP]"]
PAD, UNK, BOS, EOS, SEP = SPECIAL_TOKENS
TOKENIZER_FILE = "tokenizer.json"
SIDES = ["left", "right", "top", "bottom"]
# Always in the vocabulary, so a typed instruction's punctuation and digits are not [UNK].
EXTRA_SYMBOLS = ". , ! ? : ; ( ) ' - 0 1 2 3 4 5 6 7 8 9"


def _normalizer():
    return normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])


def _pre_tokenizer():
    return pre_tokenizers.Whitespace()  # splits on \w+ | [^\w\s]+ : words and punctuation runs


def fill_templates(templates: Iterable[str], values: dict[str, Sequence[str]]) -> list[str]:
    """Every template with every combination of values for the fields it uses."""
    out = []
    for template in templates:
        fields = sorted({f for _, f, _, _ in string.Formatter().parse(template) if f})
        missing = [f for f in fields if f not in values]
        if missing:
            raise KeyError(f"template {template!r} uses field(s) {missing} with no values")
        for combo in itertools.product(*(values[f] for f in fields)):
            out.append(template.format(**dict(zip(fields, combo))))
    return out


def sim_instructions() -> list[str]:
    """Every instruction the simulator can produce: all task templates, all fields filled in."""
    kinds = [k.replace("_", " ") for k in KIND_NAMES]
    values = {f: COLOR_NAMES for f in ("c1", "c2", "color", "bottle", "vase")}
    values.update(side=SIDES, item=kinds)
    lines = []
    for spec in TASKS.values():
        lines += fill_templates(spec.templates, values)
    return lines


def build_corpus(dataset_tasks: Iterable[str] = (), include_sim: bool = True, include_qa: bool = True) -> list[str]:
    """Instructions (sim templates and/or the datasets' stored tasks) + scene QA strings."""
    lines = [EXTRA_SYMBOLS, *dataset_tasks]
    if include_sim:
        lines += sim_instructions()
    if include_qa:
        lines += qa_corpus()
    return lines


def train_text_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``corpus``, keeping the ``vocab_size - 5`` most frequent words."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens; got {vocab_size}")
    lines = [line for line in corpus if line.strip()]
    if not lines:
        raise ValueError("the text corpus is empty")
    tok = Tokenizer(WordLevel(unk_token=UNK))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = _pre_tokenizer()
    # The trainer counts words and keeps the most frequent (ties broken by the word: deterministic).
    # show_progress=False: its bar ("Pre-processing sequences ... n / 0", no total for an iterator)
    # is noise in a log, and training takes well under a second.
    tok.train_from_iterator(lines, WordLevelTrainer(vocab_size=vocab_size, min_frequency=1,
                                                    special_tokens=SPECIAL_TOKENS, show_progress=False))
    vocab = tok.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        pair=f"{BOS} $A {SEP} $B {EOS}",
        special_tokens=[(t, vocab[t]) for t in (BOS, EOS, SEP)],
    )
    return _wrap(tok)


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, unk_token=UNK, bos_token=BOS, eos_token=EOS, sep_token=SEP,
        padding_side="right",
    )


def save_text_tokenizer(tok: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    """Write ``directory/tokenizer.json`` atomically."""
    return atomic_write(Path(directory) / TOKENIZER_FILE, lambda p: tok.backend_tokenizer.save(str(p), pretty=True))


def load_text_tokenizer(directory: str | Path, special_tokens: dict[str, str] | None = None) -> PreTrainedTokenizerFast:
    """Load ``directory/tokenizer.json`` (or a path to the file itself) as PreTrainedTokenizerFast.

    ``special_tokens``: the roles as a saved policy records them (``{"pad_token": "[PAD]", ...}``,
    empty values skipped); None: this module's ``[PAD] [UNK] [BOS] [EOS] [SEP]``. Each must be in
    the vocabulary."""
    path = Path(directory)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: text tokenizer not found (run `a1 tokenizer train`)")
    roles = ({"pad_token": PAD, "unk_token": UNK, "bos_token": BOS, "eos_token": EOS, "sep_token": SEP}
             if special_tokens is None else {k: v for k, v in special_tokens.items() if v})
    tok = PreTrainedTokenizerFast(tokenizer_file=str(path), padding_side="right", **roles)
    missing = [t for t in roles.values() if tok.convert_tokens_to_ids(t) is None or
               (t != tok.unk_token and tok.convert_tokens_to_ids(t) == tok.unk_token_id)]
    if missing:
        raise ValueError(f"{path}: special token(s) {missing} are not in the vocabulary")
    return tok
