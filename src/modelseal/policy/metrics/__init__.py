"""The gate's metrics evaluator: validation data read with its digest (:mod:`.dataset`),
predictions from a verified, loaded model per framework (:mod:`.loader`, :mod:`.predictors`),
metric functions with scikit-learn's definitions (:mod:`.functions`), measured overall and per
slice (:mod:`.evaluate`), judged with MLflow's ``MetricThreshold`` semantics
(:mod:`.thresholds`) and reported (:mod:`.report`)."""
