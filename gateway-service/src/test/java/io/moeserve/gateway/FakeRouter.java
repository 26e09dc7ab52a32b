package io.moeserve.gateway;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.router.v1.TokenLogprob;
import io.moeserve.proto.router.v1.Usage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * An in-process stand-in for router-service: a real gRPC server speaking router.proto, whose answers are scripted
 * by the prompt itself, so that the same scripts work against @QuarkusTest and against the packaged service.
 *
 * <p>A prompt (chat message or completion prompt) may contain {@code FAKE{...json...}}; the last one counts:
 * <ul>
 *   <li>{@code reply}: the text to generate (default "Hello from the fake router."); {@code repeat}: how often</li>
 *   <li>{@code reply_when}: {@code {"text": "reply", ...}}: the reply instead when the prompt contains that text
 *       (the first that does), so that one script plays a whole conversation (a tool call, then the answer once
 *       the tool's result is in the prompt)</li>
 *   <li>{@code ids}: token ids to generate instead of a reply</li>
 *   <li>{@code tokenize}: "greedy" (default: longest vocabulary pieces) or "bytes" (one token per UTF-8 byte)</li>
 *   <li>{@code per_message}: tokens per GenerateResponse (default 1); {@code delay_ms}: pause between messages;
 *       {@code first_delay_ms}: pause before the first (the router's queueing and prefill)</li>
 *   <li>{@code finish}: "stop" (default: the EOS token, FINISH_REASON_STOP), "length", "none" (the stream ends
 *       without a finish reason), "hang" (the stream never ends). With "stop", a reply that holds an end token
 *       itself (an EOS id, or one of the request's stop_token_ids) ends there, as a router does: no EOS is added</li>
 *   <li>{@code error}: {@code {"code": "RESOURCE_EXHAUSTED", "message": ..., "retry_after_ms": 2500, "after": 0}}:
 *       fail with that status after that many messages</li>
 *   <li>{@code echo_prompt}: true: the reply is the decoded prompt (to check chat templates)</li>
 *   <li>{@code prefix_cache}: true: usage.cached_prompt_tokens as the router's prefix cache would report it: 0 the
 *       first time these prompt ids are seen, then the whole 16-token blocks before the prompt's last token</li>
 *   <li>{@code masked_per_message}: degraded mode: each message adds this many masked (token, expert) pairs to the
 *       running count it carries in masked_expert_pairs</li>
 * </ul>
 * max_new_tokens is honoured (FINISH_REASON_LENGTH). With logprobs, token t gets logprob -0.25 and its k-th
 * alternative is (t + k) mod vocab with logprob -0.25 - k. It does not use the tokenizer library: ids 0-255 of
 * the synthetic tokenizer are the bytes, and the vocabulary is read from tokenizer.json; a reply tokenized
 * "greedy" spells special tokens ({@code <|call|>}) as their ids, as the tokenizer does.
 *
 * <p>The end-of-sequence ids are the checkpoint's, as the router reads them: generation_config.json's
 * eos_token_id (a number or a list), else config.json's; the first is the one a "stop" reply ends with.
 *
 * <p>It implements the service interface, not the ImplBase: Quarkus takes every BindableService on the test
 * classpath for a service of its own and would start a gRPC server for it.
 */
public final class FakeRouter implements RouterServiceGrpc.AsyncService, AutoCloseable {
    static final String DEFAULT_REPLY = "Hello from the fake router.";
    static final int MAX_CONTEXT = 1024;
    static final long CREATED = 1_700_000_000L;
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Its own copy of the trailer key, so that the fake needs none of the gateway's classes. */
    static final Metadata.Key<String> RETRY_AFTER_MS = Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER);

    private final String modelId;
    private final int vocabSize;
    private final ByteLevelVocabulary vocab;
    /** The checkpoint's end-of-sequence ids; the first ends a "stop" reply. */
    private final int[] eosIds;
    private final Server server;
    private final ScheduledExecutorService timer = Executors.newScheduledThreadPool(4, r -> {
        Thread t = new Thread(r, "fake-router");
        t.setDaemon(true);
        return t;
    });
    private final Map<String, Call> calls = new ConcurrentHashMap<>();
    /** The prompts seen by scripts with prefix_cache, as the router's prefix cache would hold them. */
    private final Set<List<Integer>> cachedPrompts = ConcurrentHashMap.newKeySet();

    /** What the fake saw of one Generate call. */
    public static final class Call {
        public final GenerateRequest request;
        public final String prompt;
        private final CountDownLatch ended = new CountDownLatch(1);
        private volatile boolean cancelled;
        private volatile int sent;

        Call(GenerateRequest request, String prompt) {
            this.request = request;
            this.prompt = prompt;
        }

        public boolean cancelled() {
            return cancelled;
        }

        /** Tokens sent before the call ended. */
        public int sent() {
            return sent;
        }

        /** Waits for the call to end (finished, failed or cancelled by the client). */
        public boolean awaitEnd(Duration timeout) throws InterruptedException {
            return ended.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    FakeRouter(Path checkpoint, String modelId, int vocabSize) throws IOException {
        this(checkpoint, modelId, vocabSize, 0);
    }

    FakeRouter(Path checkpoint, String modelId, int vocabSize, int port) throws IOException {
        this.modelId = modelId;
        this.vocabSize = vocabSize;
        this.vocab = ByteLevelVocabulary.read(checkpoint.resolve("tokenizer.json"));
        this.eosIds = eosIds(checkpoint);
        this.server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
                .addService(RouterServiceGrpc.bindService(this)).build().start();
    }

    int port() {
        return server.getPort();
    }

    int eos() {
        return eosIds[0];
    }

    /** generation_config.json's eos_token_id, else config.json's, as transformers' GenerationConfig reads it. */
    private static int[] eosIds(Path checkpoint) throws IOException {
        for (String file : new String[] {"generation_config.json", "config.json"}) {
            Path path = checkpoint.resolve(file);
            if (!Files.exists(path)) continue;
            JsonNode eos = JSON.readTree(path.toFile()).path("eos_token_id");
            if (eos.isInt()) return new int[] {eos.asInt()};
            if (eos.isArray() && !eos.isEmpty()) {
                int[] ids = new int[eos.size()];
                for (int i = 0; i < ids.length; i++) ids[i] = eos.get(i).asInt();
                return ids;
            }
        }
        throw new IOException(checkpoint + " names no eos_token_id in generation_config.json or config.json");
    }

    ByteLevelVocabulary vocabulary() {
        return vocab;
    }

    /** The call the gateway made for this request id (response id + "-" + choice index), waiting for it a bit. */
    public Call call(String requestId) throws InterruptedException {
        for (int i = 0; i < 200; i++) {
            Call c = calls.get(requestId);
            if (c != null) return c;
            Thread.sleep(10);
        }
        throw new AssertionError("the fake router never saw request " + requestId + "; it saw " + calls.keySet());
    }

    /** Every call whose prompt contains the marker. */
    public List<Call> callsWithPrompt(String marker) {
        List<Call> out = new ArrayList<>();
        for (Call c : calls.values()) {
            if (c.prompt.contains(marker)) out.add(c);
        }
        return out;
    }

    @Override
    public void describeModel(DescribeModelRequest request, StreamObserver<ModelDescription> observer) {
        observer.onNext(ModelDescription.newBuilder()
                .setModelId(modelId)
                .setArchitecture("MixtralForCausalLM")
                .setVocabSize(vocabSize)
                .setMaxContext(MAX_CONTEXT)
                .addAllEosTokenIds(Arrays.stream(eosIds).boxed().toList())
                .setNumLayers(2)
                .setNumExperts(4)
                .setTopK(2)
                .setKvCacheTokens(4096)
                .setKvCacheFreeTokens(4096)
                .setCreatedUnixSeconds(CREATED)
                .build());
        observer.onCompleted();
    }

    @Override
    public void generate(GenerateRequest request, StreamObserver<GenerateResponse> observer) {
        ServerCallStreamObserver<GenerateResponse> out = (ServerCallStreamObserver<GenerateResponse>) observer;
        int[] promptIds = request.getPromptTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
        String prompt = vocab.decode(promptIds);
        Call call = new Call(request, prompt);
        calls.put(request.getRequestId(), call);
        out.setOnCancelHandler(() -> {
            call.cancelled = true;
            call.ended.countDown();
        });
        if (!request.getModelId().equals(modelId)) {
            fail(call, out, Status.NOT_FOUND.withDescription("model " + request.getModelId() + " is not served here"), null);
            return;
        }
        Script script;
        try {
            script = Script.parse(prompt, vocab);
        } catch (IOException e) {
            fail(call, out, Status.INTERNAL.withDescription("bad FAKE script: " + e.getMessage()), null);
            return;
        }
        Stream stream = new Stream(call, out, script, promptIds.length);
        if (script.prefixCache && !cachedPrompts.add(request.getPromptTokenIdsList())) {
            stream.cachedPromptTokens = (promptIds.length - 1) / 16 * 16;
        }
        stream.next(script.firstDelayMs);
    }

    private void fail(Call call, ServerCallStreamObserver<GenerateResponse> out, Status status, Metadata trailers) {
        out.onError(status.asRuntimeException(trailers));
        call.ended.countDown();
    }

    /** Sends one call's scripted messages, one per timer tick. */
    private final class Stream {
        final Call call;
        final ServerCallStreamObserver<GenerateResponse> out;
        final Script script;
        final int promptTokens;
        final int[] tokens;
        final FinishReason finish;
        int position;
        int messages;
        int cachedPromptTokens;

        Stream(Call call, ServerCallStreamObserver<GenerateResponse> out, Script script, int promptTokens) {
            this.call = call;
            this.out = out;
            this.script = script;
            this.promptTokens = promptTokens;
            int[] reply = script.echoPrompt ? vocab.encode(call.prompt, true) : script.tokens;
            int max = call.request.getMaxNewTokens() == 0 ? Integer.MAX_VALUE : call.request.getMaxNewTokens();
            boolean withEos = "stop".equals(script.finish);
            if (withEos) {
                int end = firstEndToken(reply, call.request);
                if (end >= 0) {
                    reply = Arrays.copyOf(reply, end + 1);
                    withEos = false;
                }
            }
            int natural = reply.length + (withEos ? 1 : 0);
            int n = Math.min(natural, max);
            tokens = new int[n];
            for (int i = 0; i < n; i++) tokens[i] = i < reply.length ? reply[i] : eosIds[0];
            finish = switch (script.finish) {
                case "stop" -> n == natural ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_LENGTH;
                case "length" -> FinishReason.FINISH_REASON_LENGTH;
                default -> FinishReason.FINISH_REASON_UNSPECIFIED;
            };
        }

        /** Where the reply holds an end token of this request (an EOS id unless ignore_eos, a stop id); -1: none. */
        int firstEndToken(int[] reply, GenerateRequest request) {
            for (int i = 0; i < reply.length; i++) {
                if (request.getStopTokenIdsList().contains(reply[i])) return i;
                if (request.getIgnoreEos()) continue;
                for (int eos : eosIds) {
                    if (eos == reply[i]) return i;
                }
            }
            return -1;
        }

        void next(long delayMs) {
            if (delayMs <= 0) {
                timer.execute(this::step);
            } else {
                timer.schedule(this::step, delayMs, TimeUnit.MILLISECONDS);
            }
        }

        void step() {
            try {
                doStep();
            } catch (RuntimeException | Error e) {
                // A broken script must not leave the call open until its deadline.
                e.printStackTrace();
                fail(call, out, Status.INTERNAL.withDescription("fake router failed: " + e), null);
            }
        }

        void doStep() {
            if (out.isCancelled()) return;
            if (script.errorCode != null && messages == script.errorAfter) {
                Metadata trailers = new Metadata();
                if (script.retryAfterMs != null) trailers.put(RETRY_AFTER_MS, script.retryAfterMs);
                fail(call, out, Status.fromCode(Status.Code.valueOf(script.errorCode)).withDescription(script.errorMessage),
                        trailers);
                return;
            }
            if (position >= tokens.length) {
                // Only "none" and "hang" get here: the others end with the message that carries the last token.
                if ("none".equals(script.finish)) {
                    out.onCompleted();
                    call.ended.countDown();
                }
                return;
            }
            int end = Math.min(tokens.length, position + script.perMessage);
            GenerateResponse.Builder message = GenerateResponse.newBuilder();
            for (int i = position; i < end; i++) {
                message.addTokenIds(tokens[i]);
                if (call.request.getLogprobs()) message.addLogprobs(logprob(tokens[i], call.request.getTopLogprobs()));
            }
            position = end;
            call.sent = position;
            if (script.maskedPerMessage > 0) message.setMaskedExpertPairs((long) script.maskedPerMessage * (messages + 1));
            boolean last = position == tokens.length && finish != FinishReason.FINISH_REASON_UNSPECIFIED;
            if (last) {
                message.setFinishReason(finish).setUsage(Usage.newBuilder().setPromptTokens(promptTokens)
                        .setCompletionTokens(tokens.length).setCachedPromptTokens(cachedPromptTokens));
            }
            out.onNext(message.build());
            messages++;
            if (last) {
                out.onCompleted();
                call.ended.countDown();
                return;
            }
            next(script.delayMs);
        }

        TokenLogprob logprob(int token, int top) {
            TokenLogprob.Builder b = TokenLogprob.newBuilder().setTokenId(token).setLogprob(-0.25f);
            for (int k = 0; k < top; k++) {
                b.addTopTokenIds((token + k) % vocabSize).addTopLogprobs(-0.25f - k);
            }
            return b.build();
        }
    }

    /** The FAKE{...} directive of a prompt. */
    static final class Script {
        int[] tokens;
        int perMessage = 1;
        long delayMs;
        long firstDelayMs;
        String finish = "stop";
        String errorCode;
        String errorMessage;
        String retryAfterMs;
        int errorAfter;
        boolean echoPrompt;
        int maskedPerMessage;
        boolean prefixCache;

        static Script parse(String prompt, ByteLevelVocabulary vocab) throws IOException {
            Script s = new Script();
            int at = prompt.lastIndexOf("FAKE{");
            JsonNode d = JSON.createObjectNode();
            if (at >= 0) {
                try (JsonParser p = JSON.getFactory().createParser(prompt.substring(at + 4))) {
                    d = JSON.readTree(p);
                }
            }
            String reply = d.path("reply").asText(DEFAULT_REPLY);
            for (var when = d.path("reply_when").fields(); when.hasNext(); ) {
                var e = when.next();
                if (prompt.contains(e.getKey())) {
                    reply = e.getValue().asText();
                    break;
                }
            }
            reply = reply.repeat(Math.max(1, d.path("repeat").asInt(1)));
            if (d.has("ids")) {
                s.tokens = new int[d.get("ids").size()];
                Iterator<JsonNode> ids = d.get("ids").elements();
                for (int i = 0; ids.hasNext(); i++) s.tokens[i] = (int) ids.next().asLong(); // uint32 on the wire
            } else {
                s.tokens = vocab.encode(reply, "bytes".equals(d.path("tokenize").asText("greedy")));
            }
            s.perMessage = Math.max(1, d.path("per_message").asInt(1));
            s.delayMs = d.path("delay_ms").asLong(0);
            s.firstDelayMs = d.path("first_delay_ms").asLong(0);
            s.finish = d.path("finish").asText("stop");
            s.echoPrompt = d.path("echo_prompt").asBoolean(false);
            s.maskedPerMessage = d.path("masked_per_message").asInt(0);
            s.prefixCache = d.path("prefix_cache").asBoolean(false);
            JsonNode error = d.get("error");
            if (error != null) {
                s.errorCode = error.path("code").asText("INTERNAL");
                s.errorMessage = error.has("message") ? error.get("message").asText() : null;
                s.retryAfterMs = error.has("retry_after_ms") ? error.get("retry_after_ms").asText() : null;
                s.errorAfter = error.path("after").asInt(0);
            }
            return s;
        }
    }

    @Override
    public void close() {
        server.shutdownNow();
        timer.shutdownNow();
    }

    /**
     * The synthetic byte-level BPE vocabulary, read from tokenizer.json without the tokenizer library: ids map to
     * bytes through GPT-2's byte alphabet, special tokens to their text.
     */
    static final class ByteLevelVocabulary {
        private final Map<String, Integer> ids = new ConcurrentHashMap<>();
        private final Map<Integer, byte[]> bytes = new ConcurrentHashMap<>();
        private final Map<Integer, String> special = new ConcurrentHashMap<>();
        private int longest;

        static ByteLevelVocabulary read(Path tokenizerJson) throws IOException {
            JsonNode root = JSON.readTree(tokenizerJson.toFile());
            ByteLevelVocabulary v = new ByteLevelVocabulary();
            root.path("model").path("vocab").fields().forEachRemaining(e -> {
                v.ids.put(e.getKey(), e.getValue().asInt());
                v.bytes.put(e.getValue().asInt(), pieceBytes(e.getKey()));
                v.longest = Math.max(v.longest, e.getKey().length());
            });
            for (JsonNode t : root.path("added_tokens")) {
                v.special.put(t.get("id").asInt(), t.get("content").asText());
                v.ids.put(t.get("content").asText(), t.get("id").asInt());
            }
            return v;
        }

        int id(String piece) {
            Integer id = ids.get(piece);
            if (id == null) throw new IllegalArgumentException("no token " + piece);
            return id;
        }

        /** Bytes as UTF-8 (special tokens as their text), as the ByteLevel decoder does. */
        String decode(int[] tokenIds) {
            ByteBuffer buf = ByteBuffer.allocate(tokenIds.length * 64 + 16);
            for (int id : tokenIds) {
                String s = special.get(id);
                byte[] b = s != null ? s.getBytes(StandardCharsets.UTF_8) : bytes.getOrDefault(id, new byte[0]);
                if (buf.remaining() < b.length) {
                    ByteBuffer bigger = ByteBuffer.allocate(buf.capacity() * 2 + b.length);
                    buf.flip();
                    bigger.put(buf);
                    buf = bigger;
                }
                buf.put(b);
            }
            return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8);
        }

        /** Text as token ids: one per byte, or greedily the longest vocabulary pieces (special tokens by their text). */
        int[] encode(String text, boolean perByte) {
            byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
            if (perByte) {
                int[] out = new int[utf8.length];
                for (int i = 0; i < utf8.length; i++) out[i] = utf8[i] & 0xFF;
                return out;
            }
            StringBuilder alphabet = new StringBuilder();
            for (byte b : utf8) alphabet.append(BYTE_CHARS[b & 0xFF]);
            String spelled = alphabet.toString();
            List<Integer> out = new ArrayList<>();
            int i = 0;
            while (i < alphabet.length()) {
                String specialToken = specialAt(spelled, i);
                if (specialToken != null) {
                    out.add(ids.get(specialToken));
                    i += specialToken.length();
                    continue;
                }
                int len = Math.min(longest, alphabet.length() - i);
                for (; len > 1; len--) {
                    if (ids.containsKey(alphabet.substring(i, i + len))) break;
                }
                out.add(ids.get(alphabet.substring(i, i + len)));
                i += len;
            }
            return out.stream().mapToInt(Integer::intValue).toArray();
        }

        /** The special token whose text starts at {@code i}, if any (their text is printable ASCII). */
        private String specialAt(String text, int i) {
            for (String token : special.values()) {
                if (text.startsWith(token, i)) return token;
            }
            return null;
        }

        private static final char[] BYTE_CHARS = new char[256];
        private static final Map<Character, Integer> CHAR_BYTES = new ConcurrentHashMap<>();

        static {
            int next = 256;
            for (int b = 0; b < 256; b++) {
                boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                BYTE_CHARS[b] = printable ? (char) b : (char) next++;
                CHAR_BYTES.put(BYTE_CHARS[b], b);
            }
        }

        private static byte[] pieceBytes(String piece) {
            byte[] out = new byte[piece.length()];
            for (int i = 0; i < piece.length(); i++) {
                Integer b = CHAR_BYTES.get(piece.charAt(i));
                if (b == null) throw new UncheckedIOException(new IOException("not a byte-level piece: " + piece));
                out[i] = (byte) (int) b;
            }
            return out;
        }
    }
}
