# One project image for the producer, the streaming driver and the Spark master/workers,
# so executors run the same Python and packages as the driver.
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*

ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    TRIPSTREAM_PATHS_JAR_CACHE=/opt/tripstream/maven \
    PYTHONUNBUFFERED=1 \
    PYSPARK_PYTHON=/usr/local/bin/python \
    PYSPARK_DRIVER_PYTHON=/usr/local/bin/python

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tripstream/ tripstream/
COPY producer/ producer/
COPY streaming/ streaming/
COPY sql/ sql/
COPY config/ config/
COPY notebooks/ notebooks/
RUN pip install --no-cache-dir -e '.[dev,notebook]' \
 && ln -s "$(python -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')" /opt/spark
ENV SPARK_HOME=/opt/spark
# Spark's Kafka connector (and the embedded broker's jars) from Maven Central, at build time.
RUN python -m tripstream.stack.maven

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["tripstream", "--help"]
