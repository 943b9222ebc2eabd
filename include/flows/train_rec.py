"""RecFlow: the next-item recommender, trained on the marts the DAG has just validated.

Run locally: ``python include/flows/train_rec.py run --max_sessions 20000``; on AWS Batch,
launch with ``SKIFF_TRAIN_ON=batch`` (the Airflow operator adds ``--with batch``).
"""

from metaflow import FlowSpec, Parameter, card, current, resources, retry, step

from skiff.training import step_resources


class RecFlow(FlowSpec):
    """Next item: given the SKUs of a session so far, predict the next SKU.

    1. start: read the marts up to the data interval, record the data version, split by time.
    2. train: Keras SKU embeddings + GRU with a copy head (GPU on Batch) ...
    2. baselines: ... while most-popular and item-to-item co-occurrence are fitted beside it.
    3. evaluate: MRR@20, HitRate@20 and behavioural slices side by side, in a card.
    4. end: log params, data version and metrics to Weights & Biases.
    """

    interval_start = Parameter("interval_start", help="data interval start (ISO 8601), for lineage", default="")
    interval_end = Parameter("interval_end", help="train on sessions started before this time (ISO 8601)", default="")
    max_sessions = Parameter("max_sessions", help="latest sessions to use (0 = all)", default=0, type=int)
    epochs = Parameter("epochs", help="training epochs", default=6, type=int)
    holdout = Parameter("holdout", help="share of the latest sessions held out", default=0.2, type=float)
    window = Parameter("window", help="items of the session the model sees", default=10, type=int)
    seed = Parameter("seed", help="training seed", default=42, type=int)

    @retry(times=2)
    @step
    def start(self):
        """Read the marts and split them by time."""
        from skiff import next_item
        from skiff.training import read_training_data

        marts, self.data_version, cutoff = read_training_data(
            interval_start=self.interval_start, interval_end=self.interval_end,
            max_sessions=self.max_sessions, holdout=self.holdout)
        self.data = next_item.prepare(marts.sequences, cutoff, window=self.window)
        print(f"data {self.data_version['id']}: {self.data.info}")
        self.next(self.train, self.baselines)

    @resources(**step_resources())
    @step
    def train(self):
        """Fit the Keras model and rank the held-out sessions' next items."""
        from skiff import next_item
        from skiff.training import store_model

        fitted = next_item.train(self.data, epochs=self.epochs, seed=self.seed)
        self.history, self.train_params, self.train_seconds = fitted.history, fitted.params, fitted.seconds
        self.top_k = {next_item.MODEL: next_item.model_top_k(fitted.model, self.data)}
        stored = store_model(fitted.model, current.flow_name, current.run_id, k=next_item.K)
        self.saved_model_tar = stored.pop("saved_model_tar")
        self.model_uri = stored
        self.next(self.evaluate)

    @step
    def baselines(self):
        """Fit most-popular and co-occurrence on the same training sessions."""
        from skiff import next_item

        self.top_k = next_item.baseline_top_k(self.data)
        self.next(self.evaluate)

    @card(type="blank")
    @step
    def evaluate(self, inputs):
        """Score every ranked list on the same held-out sessions; show the slices."""
        from metaflow.cards import Markdown, Table

        from skiff import next_item

        # the train branch's model and history pass through; each branch's scores are combined
        self.merge_artifacts(inputs, include=["data", "data_version", "model_uri", "saved_model_tar",
                                              "history", "train_params"])
        top_k = {name: top for i in inputs for name, top in i.top_k.items()}
        scores = {name: next_item.score(top, self.data) for name, top in top_k.items()}
        best = max(s["mrr@20"] for n, s in scores.items() if n != next_item.MODEL)
        self.metrics = {"model": scores[next_item.MODEL],
                        "baselines": {n: s for n, s in scores.items() if n != next_item.MODEL},
                        "mrr@20": scores[next_item.MODEL]["mrr@20"], "best_baseline_mrr@20": best,
                        "beats_baselines": scores[next_item.MODEL]["mrr@20"] > best}
        names = list(scores)
        current.card.append(Markdown(f"# RecFlow {current.run_id}\n"
                                     f"data `{self.data_version['id']}`: {self.data.info}"))
        current.card.append(Table([[key] + [f"{scores[n][key]:.4f}" for n in names]
                                   for key in scores[names[0]]], headers=["metric"] + names))
        print("\n".join(f"{n:>16}: MRR@20 {s['mrr@20']:.4f}  HitRate@20 {s['hit_rate@20']:.4f}"
                        for n, s in scores.items()))
        self.next(self.end)

    @step
    def end(self):
        """Log the run to Weights & Biases."""
        from skiff.tracking import log_training_run

        log_training_run(current.pathspec, params={**self.train_params, "data_version": self.data_version,
                                                   "window": self.window, "holdout": self.holdout},
                         metrics=self.metrics, history=self.history, tags=["rec"])


if __name__ == "__main__":
    RecFlow()
