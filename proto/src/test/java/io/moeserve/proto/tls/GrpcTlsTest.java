package io.moeserve.proto.tls;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * GrpcTls against real certificates (made by openssl, as the system test's): a gRPC server with its context shows
 * the mounted certificate, shows a renewed one to new connections once the files change, without a restart, and
 * refuses settings whose files do not load, naming them.
 */
class GrpcTlsTest {
    @TempDir
    Path dir;

    private record Settings(Path dir, boolean enabled) implements TlsSettings {
        public Path certificate() {
            return dir.resolve("tls.crt");
        }

        public Path key() {
            return dir.resolve("tls.key");
        }

        public Path ca() {
            return dir.resolve("ca.crt");
        }

        public boolean mutual() {
            return false;
        }

        public Duration reloadPeriod() {
            return Duration.ofMillis(100);
        }
    }

    @Test
    void aRenewedCertificateIsShownToNewConnectionsWithoutARestart() throws Exception {
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA");
        issue("first");
        issue("second");
        install("first");
        GrpcTls tls = new GrpcTls(new Settings(dir, true));
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).sslContext(tls.serverContext()).build().start();
        try {
            BigInteger first = serial(dir.resolve("first.crt"));
            assertEquals(first, servedSerial(server.getPort()));
            install("second");
            BigInteger second = serial(dir.resolve("second.crt"));
            assertNotEquals(first, second);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            BigInteger served = servedSerial(server.getPort());
            while (!served.equals(second) && System.nanoTime() < deadline) {
                Thread.sleep(50);
                served = servedSerial(server.getPort());
            }
            assertEquals(second, served, "the renewed certificate, re-read within a few reload periods");
        } finally {
            server.shutdownNow();
            tls.close();
        }
    }

    @Test
    void missingFilesFailTheStartNamingTheSettings() {
        GrpcTls tls = new GrpcTls(new Settings(dir, true));
        IllegalStateException e = assertThrows(IllegalStateException.class, tls::channelCredentials);
        assertTrue(e.getMessage().contains("moe.tls.certificate=" + dir.resolve("tls.crt")), e.getMessage());
    }

    @Test
    void offMeansPlaintextAndNoServerContext() {
        GrpcTls tls = new GrpcTls(new Settings(dir, false));
        assertEquals(io.grpc.InsecureChannelCredentials.class, tls.channelCredentials().getClass());
        assertThrows(IllegalStateException.class, tls::serverContext);
    }

    /** Replaces the mounted files the way the kubelet updates a Secret volume: each file whole, atomically. */
    private void install(String name) throws IOException {
        for (String[] f : new String[][] {{name + ".crt", "tls.crt"}, {name + ".key", "tls.key"}}) {
            Path tmp = dir.resolve(f[1] + ".new");
            Files.copy(dir.resolve(f[0]), tmp, StandardCopyOption.REPLACE_EXISTING);
            Files.move(tmp, dir.resolve(f[1]), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    private BigInteger servedSerial(int port) throws Exception {
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        trust.setCertificateEntry("ca", read(dir.resolve("ca.crt")));
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        try (SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", port)) {
            SSLParameters p = s.getSSLParameters();
            p.setApplicationProtocols(new String[] {"h2"});
            s.setSSLParameters(p);
            s.startHandshake();
            return ((X509Certificate) s.getSession().getPeerCertificates()[0]).getSerialNumber();
        }
    }

    private static BigInteger serial(Path cert) throws Exception {
        return read(cert).getSerialNumber();
    }

    private static X509Certificate read(Path cert) throws Exception {
        try (InputStream in = Files.newInputStream(cert)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    private void issue(String name) throws Exception {
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name);
        Files.writeString(dir.resolve(name + ".ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".crt",
                "-days", "2", "-extfile", name + ".ext");
    }

    private void openssl(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0, cmd + " failed (openssl must be on the PATH): " + out);
    }
}
