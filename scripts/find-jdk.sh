# Sourced by the project's scripts: exports JAVA_HOME pointing at a JDK 25 or newer, or exits with
# a message that says what is missing. The default `java` on our machines is 17, so PATH alone is not enough.
moe_java_major() { "$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p'; }
moe_find_jdk() {
  local c
  for c in "${MOE_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25* /usr/lib/jvm/*25* /usr/lib/jvm/temurin-2[6-9]* /opt/java/openjdk; do
    [ -n "$c" ] && [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    local v; v=$(moe_java_major "$c")
    if [ -n "$v" ] && [ "$v" -ge 25 ]; then echo "$c"; return 0; fi
  done
  if command -v javac >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
    local v; v=$(moe_java_major "$c")
    if [ -n "$v" ] && [ "$v" -ge 25 ]; then echo "$c"; return 0; fi
  fi
  return 1
}
if ! MOE_JDK=$(moe_find_jdk); then
  echo "error: this project needs a JDK 25 or newer (javac and java with jdk.incubator.vector)." >&2
  echo "       none found in \$MOE_JAVA_HOME, \$JAVA_HOME, /usr/lib/jvm or on the PATH." >&2
  echo "       Install Temurin 25 (e.g. under /usr/lib/jvm) or set MOE_JAVA_HOME to its directory." >&2
  exit 1
fi
export JAVA_HOME="$MOE_JDK"
export PATH="$JAVA_HOME/bin:$PATH"
