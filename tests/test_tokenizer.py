from textclf.tokenizer import Tokenizer, TokenizerConfig


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

    code = ("import sys; from textclf.tokenizer import Tokenizer; assert Tokenizer()('a b!') == ['a', 'b', '!']; "
            "assert 'torch' not in sys.modules; import torch; print(float(torch.ones(2).sum()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.0"
