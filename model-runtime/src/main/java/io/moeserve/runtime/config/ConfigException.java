package io.moeserve.runtime.config;

/** A config.json (or generation_config.json) that this runtime cannot serve: names the file and the key. */
public final class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
