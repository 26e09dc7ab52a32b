/**
 * config.json read into {@link io.moeserve.runtime.config.ModelConfig}: the keys every family shares in
 * {@link io.moeserve.runtime.config.ConfigParser}, the rest by each family through
 * {@link io.moeserve.runtime.config.ConfigReader}. ("Config" is always a file of the checkpoint; a service's own
 * configuration is its "settings".)
 */
package io.moeserve.runtime.config;
