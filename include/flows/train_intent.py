"""IntentFlow: the cart-abandonment classifier, trained on the marts the DAG has just validated.

Run locally: ``python include/flows/train_intent.py run``; on AWS Batch, launch with
``SKIFF_TRAIN_ON=batch`` (the Airflow operator adds ``--with batch``).
"""

from metaflow import FlowSpec, Parameter, card, current, resources, retry, step

from skiff.training import step_resources


class IntentFlow(FlowSpec):
    """Shopper intent: will a session that added to cart end in a purchase?

    1. start: read the marts up to the data interval, record the data version, build the
       prefixes at the add and 2/4/6/8/10 events after it, split by time.
    2. train: Keras GRU over event tokens (GPU on Batch) ...
    2. baselines: ... while majority class and logistic regression on counts are fitted beside it.
    3. evaluate: ROC-AUC, F1, precision/recall at the threshold, per offset, in a card.
    4. end: log params, data version and metrics to Weights & Biases.
    """

    interval_start = Parameter("interval_start", help="data interval start (ISO 8601), for lineage", default="")
    interval_end = Parameter("interval_end", help="train on sessions started before this time (ISO 8601)", default="")
    max_sessions = Parameter("max_sessions", help="latest sessions to use (0 = all)", default=0, type=int)
    epochs = Parameter("epochs", help="training epochs", default=8, type=int)
    holdout = Parameter("holdout", help="share of the latest sessions held out", default=0.2, type=float)
    seed = Parameter("seed", help="training seed", default=42, type=int)

    @retry(times=2)
    @step
    def start(self):
        """Read the marts and build the intent examples."""
        from skiff import intent
        from skiff.training import read_training_data

        marts, self.data_version, cutoff = read_training_data(
            interval_start=self.interval_start, interval_end=self.interval_end,
            max_sessions=self.max_sessions, holdout=self.holdout)
        self.data = intent.prepare(marts, cutoff)
        print(f"data {self.data_version['id']}: {self.data.info}")
        self.next(self.train, self.baselines)

    @resources(**step_resources())
    @step
    def train(self):
        """Fit the Keras model and score train and held-out prefixes."""
        from skiff import intent
        from skiff.training import store_model

        fitted = intent.train(self.data, epochs=self.epochs, seed=self.seed)
        self.history, self.train_params = fitted.history, fitted.params
        self.scores = {intent.MODEL: intent.model_scores(fitted.model, self.data)}
        stored = store_model(fitted.model, current.flow_name, current.run_id)
        self.saved_model_tar = stored.pop("saved_model_tar")
        self.model_uri = stored
        self.next(self.evaluate)

    @step
    def baselines(self):
        """Fit the majority class and logistic regression on event counts."""
        from skiff import intent

        self.scores = intent.baseline_scores(self.data)
        self.next(self.evaluate)

    @card(type="blank")
    @step
    def evaluate(self, inputs):
        """Score every model on the same held-out prefixes."""
        from metaflow.cards import Markdown, Table

        from skiff import intent

        # the train branch's model and history pass through; each branch's scores are combined
        self.merge_artifacts(inputs, include=["data", "data_version", "model_uri", "saved_model_tar",
                                              "history", "train_params"])
        scores = {name: intent.score(self.data, *s) for i in inputs for name, s in i.scores.items()}
        logistic = scores["logistic (counts)"]["roc_auc"]
        self.metrics = {"model": scores[intent.MODEL],
                        "baselines": {n: s for n, s in scores.items() if n != intent.MODEL},
                        "roc_auc": scores[intent.MODEL]["roc_auc"], "logistic_roc_auc": logistic,
                        "beats_baselines": scores[intent.MODEL]["roc_auc"] > logistic}
        names = list(scores)
        current.card.append(Markdown(f"# IntentFlow {current.run_id}\n"
                                     f"data `{self.data_version['id']}`: {self.data.info}"))
        current.card.append(Table([[key] + [f"{scores[n][key]:.4f}" for n in names]
                                   for key in scores[names[0]]], headers=["metric"] + names))
        print("\n".join(f"{n:>20}: ROC-AUC {s['roc_auc']:.4f}  F1 {s['f1']:.4f}" for n, s in scores.items()))
        self.next(self.end)

    @step
    def end(self):
        """Log the run to Weights & Biases."""
        from skiff.tracking import log_training_run

        log_training_run(current.pathspec, params={**self.train_params, "data_version": self.data_version,
                                                   "holdout": self.holdout},
                         metrics=self.metrics, history=self.history, tags=["intent"])


if __name__ == "__main__":
    IntentFlow()
