package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.json.JsonWriteFeature;

/** The JSON generator factory of every body the gateway writes. */
final class JsonOutput {
    /**
     * Characters outside the BMP (emoji) as plain UTF-8, not as escaped surrogate pairs, which Jackson writes by
     * default; both are valid JSON, but the raw form is what other servers send and half the size.
     */
    static final JsonFactory FACTORY = JsonFactory.builder()
            .enable(JsonWriteFeature.COMBINE_UNICODE_SURROGATES_IN_UTF8)
            .build();

    private JsonOutput() {}
}
