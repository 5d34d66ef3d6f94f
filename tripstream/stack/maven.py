"""Jars from Maven Central, resolved once with the Ivy that ships inside pyspark and cached.

Two closures are needed: Apache Kafka's broker (`kafka_2.13`, plus the SLF4J binding its
Maven closure lacks) and Spark's Kafka connector (`spark-sql-kafka-0-10_2.13` at exactly
the pinned pyspark's version). Each lands in `<cache>/<name>-<version>/` with a `.complete`
marker written last, so a second `make run` (or test session) downloads nothing, and an
interrupted download is resumed, never half-used.

    python -m tripstream.stack.maven      # resolve both ahead of time (the Dockerfile does)
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tripstream.errors import SetupError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"  # the same as docker-compose.yml's apache/kafka image
# Kafka 4.1's closure brings log4j-core 2.24.3 and slf4j-api 1.7.36 but no binding.
LOG4J_VERSION = "2.24.3"
MARKER = ".complete"


@dataclass(frozen=True)
class Closure:
    """Some Maven artifacts and everything they depend on (Ivy conf `default`)."""

    name: str
    version: str
    artifacts: tuple[tuple[str, str, str], ...]  # (group, artifact, version)

    def folder(self, cache: Path) -> Path:
        return cache / f"{self.name}-{self.version}"


def kafka_broker_closure(version: str = KAFKA_VERSION) -> Closure:
    return Closure(
        "kafka",
        version,
        (
            ("org.apache.kafka", "kafka_2.13", version),
            ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        ),
    )


def spark_kafka_closure(spark_version: str) -> Closure:
    return Closure(
        "spark-sql-kafka",
        spark_version,
        (("org.apache.spark", "spark-sql-kafka-0-10_2.13", spark_version),),
    )


def ivy_jar() -> Path:
    from tripstream.stack.spark import spark_home

    found = sorted((spark_home() / "jars").glob("ivy-*.jar"))
    if not found:
        raise SetupError(
            f"no ivy-*.jar in {spark_home() / 'jars'}: the pyspark install is incomplete. "
            "Try: rm -rf .venv && make install."
        )
    return found[-1]


def _ivy_xml(closure: Closure) -> str:
    deps = "\n".join(
        f"    <dependency org={quoteattr(g)} name={quoteattr(a)} rev={quoteattr(v)} "
        'conf="default->default"/>'
        for g, a, v in closure.artifacts
    )
    return (
        '<ivy-module version="2.0">\n'
        f'  <info organisation="tripstream" module="{closure.name}"/>\n'
        '  <configurations><conf name="default"/></configurations>\n'
        f"  <dependencies>\n{deps}\n  </dependencies>\n</ivy-module>\n"
    )


def _ivy(
    closure: Closure, cache: Path, folder: Path, java: str, what: str
) -> subprocess.CompletedProcess[str]:
    """One Ivy run that retrieves the closure's jars into folder."""
    with tempfile.TemporaryDirectory(prefix="tripstream-ivy-") as tmp:
        spec = Path(tmp) / "ivy.xml"
        spec.write_text(_ivy_xml(closure), encoding="utf-8")
        argv = [
            java,
            "-jar",
            str(ivy_jar()),
            "-ivy",
            str(spec),
            "-confs",
            "default",
            "-cache",
            str(cache / "ivy-cache"),
            "-retrieve",
            str(folder / "[artifact]-[revision](-[classifier]).[ext]"),
        ]
        try:
            return subprocess.run(  # noqa: S603 - argv built here
                argv, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise SetupError(
                f"fetching {what} from Maven Central took over 15 minutes. Try again, or "
                "check the network or proxy (set -Dhttps.proxyHost in JAVA_TOOL_OPTIONS)."
            ) from e


def resolve(closure: Closure, cache: Path, java: str = "java") -> list[Path]:
    """The closure's jars, downloaded on first use; raises SetupError with the fix."""
    folder = closure.folder(cache)
    if (folder / MARKER).exists():
        return sorted(folder.glob("*.jar"))
    if shutil.which(java) is None and not Path(java).is_file():
        raise SetupError(
            "Java is needed to fetch and run the Kafka and Spark jars; none found. "
            "Try: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)."
        )
    what = ", ".join(":".join(a) for a in closure.artifacts)
    logger.info("fetching %s from Maven Central into %s (once)", what, folder)
    for attempt in (1, 2):  # Maven Central once refused a served module; the next try worked
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-downloaded is kept
        folder.mkdir(parents=True)
        done = _ivy(closure, cache, folder, java, what)
        jars = sorted(folder.glob("*.jar"))
        if done.returncode == 0 and jars:
            break
        unresolved = [ln.strip() for ln in done.stdout.splitlines() if "not found" in ln]
        detail = unresolved[0] if unresolved else (done.stdout + done.stderr).strip()[-300:]
        if attempt == 2:
            raise SetupError(
                f"cannot fetch {what} from Maven Central ({detail}). Try: check that this "
                "machine reaches Maven Central (or a mirror set in JAVA_TOOL_OPTIONS), then "
                "run the command again; nothing half-downloaded is used."
            )
        logger.warning("fetching %s failed (%s); trying once more in 5 s", what, detail)
        time.sleep(5)
    (folder / MARKER).write_text("\n".join(j.name for j in jars) + "\n")
    logger.info("fetched %s jars into %s", len(jars), folder)
    return jars


def connector_jars(cache: Path, java: str = "java") -> list[Path]:
    """Spark's Kafka connector for this pyspark, less what pyspark already ships (Scala,
    Hadoop client, ...): two copies of a class on one classpath is asking for trouble."""
    import pyspark

    from tripstream.stack.spark import spark_home

    shipped = {_artifact(j.name) for j in (spark_home() / "jars").glob("*.jar")}
    jars = resolve(spark_kafka_closure(pyspark.__version__), cache, java)
    return [j for j in jars if _artifact(j.name) not in shipped]


def _artifact(jar_name: str) -> str:
    """'kafka-clients-3.9.2.jar' -> 'kafka-clients' (the name without its version)."""
    stem = jar_name.removesuffix(".jar")
    parts = stem.split("-")
    for i, part in enumerate(parts):
        if part[:1].isdigit():
            return "-".join(parts[:i])
    return stem


def main() -> int:
    from tripstream.settings import load_settings
    from tripstream.stack.spark import java_binary

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = load_settings()
    cache, java = settings.paths.jar_cache, java_binary(settings.paths.state_dir)
    try:
        resolve(kafka_broker_closure(settings.kafka.version), cache, java)
        connector_jars(cache, java)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
