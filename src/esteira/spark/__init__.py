"""The Spark engine: the same lake tables, models and drift tests, with Spark doing the work
where the data outgrows one machine. Batch scoring runs the registered model in Spark's
Python workers (`mlflow.pyfunc.spark_udf`); monitoring counts the current data in Spark
aggregates into the tallies the embedded engine fills, so drift is decided by the same
code. Spark reads a Delta table's current files and its tasks write Parquet files that one
Delta commit adds (`tables`), so no Delta jars are needed: a local Spark, a cluster or
Databricks read and write the lake as `deltalake` does."""
