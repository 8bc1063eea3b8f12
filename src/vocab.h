/*
 * vocab.h — do two models share a vocabulary? A draft model for
 * speculative decoding proposes token ids that its target verifies, so the
 * ids must mean the same text in both.
 *
 * llama-server checks this only after loading both models (common/
 * speculative.cpp: vocabulary type, BOS/EOS, at most 128 tokens apart in
 * size, the text of every token from id 5 on) and, on a mismatch, logs
 * "the target and draft vocabs are not compatible" and serves without the
 * draft: the draft's memory and load time are spent for nothing and nobody
 * is told. Variet compares the GGUFs before launch instead and refuses the
 * pair with the first difference named.
 *
 * What is compared, in this order (the first difference is reported):
 *   tokenizer.ggml.model       the tokenizer kind (llama, gpt2, ...): equal
 *   tokenizer.ggml.pre         the pre-tokenizer (qwen35, llama-bpe, ...):
 *                              equal, absent reading as "default" (llama.cpp)
 *   tokenizer.ggml.tokens      the sizes at most 128 apart (what llama-server
 *                              allows: checkpoints pad their embedding
 *                              tables differently); then the text of every
 *                              token from id 5 on, up to the smaller size
 *                              (ids 0-4 are specials whose names differ
 *                              between conversions; their ids are compared
 *                              below)
 *   tokenizer.ggml.token_type  when both files have it: every type from id 5
 *   special tokens             bos, eos, eot, eom, unknown, separator,
 *                              padding, mask ids (tokenizer.ggml.*_token_id)
 *                              and add_bos_token / add_eos_token: equal
 *                              where either file sets them
 * Pure: reads two parsed files (gguf.h), allocates nothing.
 */
#ifndef VARIET_VOCAB_H
#define VARIET_VOCAB_H

#include <stddef.h>

#include "gguf.h"

/* Largest difference in token count llama-server accepts between a target
 * and its draft (SPEC_VOCAB_MAX_SIZE_DIFFERENCE). */
#define VOCAB_MAX_SIZE_DIFF 128
/* First token id whose text is compared (SPEC_VOCAB_CHECK_START_TOKEN_ID). */
#define VOCAB_CHECK_START 5

/* Compare the vocabularies of `a` (the target) and `b` (the draft).
 * 0: the same by the rules above. 1: they differ; diff gets the first
 * difference in words, target's value first:
 *   "token 261: '▁a' vs '▁z'"
 *   "tokenizer.ggml.pre: qwen35 vs llama-bpe"
 *   "token count: 248320 vs 151936 (llama-server allows at most 128 apart)"
 *   "tokenizer.ggml.eot_token_id: 260 vs unset"
 * -EINVAL: one of them has no vocabulary (a projector, a bare tensor file);
 * diff says which ("the draft has no tokenizer.ggml.tokens"). Token texts in
 * messages are cut at 48 bytes, control bytes shown as \xNN. */
int vocab_compare(const gguf_t *a, const gguf_t *b, char *diff, size_t difflen);

#endif
