"""The agreement corpus: real third-party wrappers, each in its own file with its data, collator and Trainer.

Every module cites its source (repository, path, class, commit) and says what was simplified; it defines
``Model`` (zero-argument factory), ``make_data()``, ``collator``, ``TRAINER`` (a Trainer subclass or None),
``KIND`` ("trainer" or "seq2seq") and ``EXPECTED`` (profile -> "ok" | "fails" | "silent", what the real Trainer
did, measured on the transformers lines in ``VERIFIED_ON``, default tests.corpus_runner.VERIFIED_ON).
Optional: ``ARGS`` (the repository's
own TrainingArguments fields, added to every profile), ``ARGS_CLASS``, ``NEEDS`` (packages), ``EXPECTED_BY_LINE``
({line: {profile: status}}) and ``SKIP`` (a reason, or a callable giving one or None).
tests/corpus_runner.py runs them; tests/test_corpus_agreement.py and scripts/agreement_matrix.py compare.
"""

CORPUS: tuple[str, ...] = (
    "trl_value_head",
    "deepspeed_chat_reward",
    "stack_llama_reward",
    "re_entity_start",
    "simcse_bert",
    "llava_llama",
    "ultravox",
    "t5_unscrambling",
    "trl_seq2seq_value_head",
    "rnn_custom_trainer",
    "rbert",
    "bert_text_classifier",
)
