"""common/sentiment/tokens.py: GloVe-style tokens (lowercase, punctuation apart, PTB clitics)."""

from common.sentiment.tokens import tokenize


def test_words_are_lowercased_and_punctuation_stands_apart():
    assert tokenize("Great movie, GREAT cast!!") == ["great", "movie", ",", "great", "cast", "!", "!"]


def test_clitics_are_split_off_as_the_stanford_tokenizer_does():
    assert tokenize("I don't think it's bad; we can't, won't") == [
        "i", "do", "n't", "think", "it", "'s", "bad", ";", "we", "ca", "n't", ",", "wo", "n't"]
    assert tokenize("They’re here") == ["they", "'re", "here"]  # the typographic apostrophe too


def test_apostrophes_inside_words_stay_and_quotes_are_punctuation():
    assert tokenize("O'Neill's 'rock'n'roll'") == ["o'neill", "'s", "'", "rock'n'roll", "'"]


def test_html_tags_and_entities_of_imdb_reviews():
    assert tokenize("Bad.<br /><br />Really &amp; truly<i>bad</i>") == [
        "bad", ".", "really", "&", "truly", "bad"]


def test_undecodable_marks_and_underscores_are_not_tokens():
    assert tokenize("cars_\ufffd\ufffd_.no #driverless café") == [
        "cars", ".", "no", "#", "driverless", "café"]


def test_a_text_without_tokens_is_an_empty_list():
    assert tokenize("") == []
    assert tokenize("  <br />\n\t") == []
