"""Vietnamese text layer: Unicode/tone-mark normalisation, teen code, accents.

Entry point for the chat pipeline::

    restorer = load_or_train(models_dir, extra_dirs=[kb_content_dir])  # once, at start-up
    result = normalize(message, restorer)   # per message; see NormalizedText

Modules: ``normalize`` (nfc, tone marks, folding), ``teencode`` (dictionary in
``data/teencode.tsv``), ``tokens`` (syllables, word_tokenize), ``accents``
(AccentRestorer), ``normalizer`` (writing_style, normalize).
"""

from assistant.text.accents import (
    AccentModelError,
    AccentRestorer,
    RestorerConfig,
    default_training_texts,
    load_or_train,
)
from assistant.text.normalize import fold_accents, has_diacritics, nfc, normalize_tone_marks
from assistant.text.normalizer import NormalizedText, WritingStyle, normalize, writing_style
from assistant.text.teencode import TeencodeError, expand_teencode, load_teencode
from assistant.text.tokens import syllables, word_tokenize

__all__ = [
    "AccentModelError",
    "AccentRestorer",
    "NormalizedText",
    "RestorerConfig",
    "TeencodeError",
    "WritingStyle",
    "default_training_texts",
    "expand_teencode",
    "fold_accents",
    "has_diacritics",
    "load_or_train",
    "load_teencode",
    "nfc",
    "normalize",
    "normalize_tone_marks",
    "syllables",
    "word_tokenize",
    "writing_style",
]
