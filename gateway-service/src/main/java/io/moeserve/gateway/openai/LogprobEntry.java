package io.moeserve.gateway.openai;

import io.moeserve.proto.router.v1.TokenLogprob;

/**
 * The log-probabilities of one generated token, as the router sent them, and where the token's text starts in
 * the choice's output (in code points, as Python and so OpenAI count {@code text_offset}).
 */
public record LogprobEntry(TokenLogprob logprob, int textOffset) {}
