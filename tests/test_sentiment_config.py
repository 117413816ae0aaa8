"""common.sentiment.config: a bad field is one error naming the field and the value."""

import pytest

from common.config import ConfigError
from common.sentiment.config import TextConfig


@pytest.mark.parametrize("changes, message", [
    ({"max_len": 0}, "max_len=0: must be >= 1"),
    ({"max_size": 0}, "max_size=0: must be >= 1"),
    ({"cell": "none"}, "cell='none': must be one of rnn, lstm, gru"),
    ({"corpus": "imdb"}, "corpus_path='': corpus=imdb needs the path of its files"),
    ({"corpus_path": "reviews.csv"}, "corpus_path='reviews.csv': the default corpus is installed"),
    ({"vectors_member": "glove.6B.100d.txt"}, "vectors_member='glove.6B.100d.txt': names a file inside a .zip"),
    ({"cell": "gru", "activation": "relu"}, "activation='relu': only the rnn cell takes an activation"),
    ({"schedule": "multistep"}, "milestones=[]: schedule=multistep needs at least one milestone"),
    ({"lr": 0.0}, "lr=0.0: must be a finite number > 0"),
])
def test_a_bad_field_names_itself(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TextConfig(**changes)


def test_a_config_round_trips_through_its_dict():
    cfg = TextConfig(cell="lstm", corpus="csv", corpus_path="x.csv", milestones=[100, 200], schedule="multistep")
    assert TextConfig.from_dict(cfg.to_dict()) == cfg and cfg.task == "sentiment"
    with pytest.raises(ConfigError, match="unknown config field 'digits'"):
        TextConfig.from_dict({**cfg.to_dict(), "digits": 9})
