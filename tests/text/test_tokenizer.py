import functools

from textclf.text.tokenizer import Tokenizer, TokenizerConfig


def test_spacy_rules_split_punctuation_and_contractions():
    assert Tokenizer()("Don't miss it, it's GREAT!") == ["do", "n't", "miss", "it", ",", "it", "'s", "great", "!"]


def test_lowercasing_can_be_turned_off():
    assert Tokenizer(TokenizerConfig(lowercase=False))("Great Film") == ["Great", "Film"]


def test_batch_matches_single_and_drops_whitespace_tokens():
    tok = Tokenizer()
    texts = ["A  fine\n\nfilm .", "", "   ", "emoji 😀 and \u200f rtl"]
    assert tok.tokenize_batch(texts) == [tok(t) for t in texts]
    assert tok.tokenize_batch(texts)[:3] == [["a", "fine", "film", "."], [], []]


def test_texts_longer_than_spacy_limit_are_cut_not_fatal():
    tok = Tokenizer(TokenizerConfig(max_chars=50))
    tokens = tok("word " * 2_000_000)  # 10 million characters: spaCy alone would refuse it
    assert tokens == ["word"] * 10


def test_tokenizing_leaves_torch_unimported_and_importable():
    # a tokenizing worker of training needs no torch; spaCy's thinc would import it (seconds of start-up)
    import subprocess
    import sys

    code = (
        "import sys; from textclf.text.tokenizer import Tokenizer; assert Tokenizer()('a b!') == ['a', 'b', '!']; "
        "assert 'torch' not in sys.modules; import torch; print(float(torch.ones(2).sum()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.0"


@functools.lru_cache(maxsize=1)
def _spacy_tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def _spacy_tokens(text: str, lowercase: bool) -> list[str]:
    """What spaCy makes of the whole text at once."""
    doc = _spacy_tokenizer()(text.lower() if lowercase else text)
    return [t.text for t in doc if not t.is_space]


def _adversarial_texts(n: int, seed: int) -> list[str]:
    """Punctuation, emoticons, contractions and spaCy's own special cases packed around whitespace,
    where its special-case matcher looks across words."""
    import random

    rules = [k for k in _spacy_tokenizer().rules if not k.isspace()]
    alphabet = list("abcXYZ019()[]{}:;'\".,!?-/\\@#$%&*_+=<>~`|^") + [
        " ",
        " ",
        "\t",
        "\n",
        "\xa0",
        "é",
        "’",
        "“",
        "😀",
        "…",
    ]
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        parts = [
            rng.choice(rules) if rng.random() < 0.5 else "".join(rng.choices(alphabet, k=rng.randint(1, 4)))
            for _ in range(rng.randint(1, 8))
        ]
        texts.append("".join(p + rng.choice(["", " ", "  ", "\n"]) for p in parts))
    return texts


def test_tokens_are_spacys_also_where_special_cases_meet_across_whitespace():
    # spaCy matches multi-token special cases over the whole text: in "[ :)" a failed match of "[:"
    # across the space keeps ":)" apart, which tokenizing word by word would not see
    crossing = ["[ :)%", ">^ -( =(Y`", "' ''ö.", "Dontve\nShan't  Gotta", "it 's a film .", "and/or ( ok )"]
    texts = crossing + _adversarial_texts(3000, seed=7)
    for lowercase in (True, False):
        tok = Tokenizer(TokenizerConfig(lowercase=lowercase))
        assert tok.tokenize_batch(texts) == [_spacy_tokens(t, lowercase) for t in texts]
        assert tok.tokenize_batch(texts) == [_spacy_tokens(t, lowercase) for t in texts]  # from remembered words
    assert Tokenizer()("[ :)%") == ["[", ":", ")", "%"] and Tokenizer()("x :)%") == ["x", ":)", "%"]


def test_remembered_words_are_bounded(monkeypatch):
    import textclf.text.tokenizer as tokenizer

    monkeypatch.setattr(tokenizer, "CHUNK_CACHE_SIZE", 50)
    tok = Tokenizer()
    texts = [" ".join(f"w{i}x{j}," for j in range(20)) for i in range(30)]  # 20 new words each
    for i in range(0, 30, 2):
        assert tok.tokenize_batch(texts[i : i + 2]) == [_spacy_tokens(t, True) for t in texts[i : i + 2]]
        assert len(tok._chunks) <= 50
