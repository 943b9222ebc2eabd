"""RecFlow: the next-item recommender, trained on the marts the DAG has just validated.

Run locally: ``python include/flows/train_rec.py run --max_sessions 20000``; on AWS Batch,
launch with ``SKIFF_TRAIN_ON=batch`` (the Airflow operator adds ``--with batch``).
"""

from metaflow import Parameter, card, resources, retry, step
from training_flow import TrainingFlow, forward_run_env

from skiff.train import step_resources


@forward_run_env
class RecFlow(TrainingFlow):
    """Next item: given the SKUs of a session so far, predict the next SKU.

    1. start: read the marts up to the data interval, record the data version, split by time.
    2. train: Keras SKU embeddings + GRU with a copy head (GPU on Batch), saved as a bundle ...
       baselines: ... most-popular and item-to-item co-occurrence, fitted beside it ...
       champion: ... and the model serving now, re-scored on this run's held-out sessions.
    3. evaluate: MRR@20, HitRate@20 and behavioural slices side by side, in a card.
    4. end: log params, data version and metrics to Weights & Biases.
    """

    epochs = Parameter("epochs", help="training epochs", default=6, type=int)
    window = Parameter("window", help="items of the session the model sees", default=10, type=int)

    @retry(times=2)
    @step
    def start(self):
        """Read the marts and split them by time."""
        from skiff.train import next_item

        marts, cutoff = self.read_marts()
        self.data = next_item.prepare(marts.sequences, cutoff, window=self.window)
        print(f"data {self.data_version['id']}: {self.data.info}")
        self.next(self.train, self.baselines, self.champion)

    @resources(**step_resources())
    @step
    def train(self):
        """Fit the Keras model, rank the held-out sessions' next items, write the bundle."""
        from skiff.train import next_item

        fitted = next_item.train(self.data, epochs=self.epochs, seed=self.seed,
                                 start_from=self.warm_start("rec"))
        self.outputs = {next_item.MODEL: next_item.model_top_k(fitted.model, self.data)}
        self.keep_model(fitted, kind="rec", vocabulary=self.data.vocab, max_len=self.data.window,
                        k=next_item.K, popular=next_item.popular_items(self.data, next_item.K))
        self.next(self.evaluate)

    @step
    def baselines(self):
        """Fit most-popular and co-occurrence on the same training sessions."""
        from skiff.train import next_item

        self.outputs = next_item.baseline_top_k(self.data)
        self.next(self.evaluate)

    @step
    def champion(self):
        """Rank with the serving champion, if any, on the same held-out sessions."""
        from skiff.train import champion, next_item

        found = self.load_champion("rec")
        self.outputs = ({found.name: champion.rec_top_k(found.model, self.data, next_item.K)}
                        if found else {})
        self.next(self.evaluate)

    @card(type="blank")
    @step
    def evaluate(self, inputs):
        """Score every ranked list on the same held-out sessions; show the slices."""
        from skiff.train import next_item

        self.metrics = self.collect(inputs, next_item.MODEL, "mrr@20",
                                    lambda top: next_item.score(top, self.data),
                                    show=("mrr@20", "hit_rate@20"))
        self.next(self.end)

    @step
    def end(self):
        """Log the run to Weights & Biases."""
        self.log_run(["rec"], window=self.window)


if __name__ == "__main__":
    RecFlow()
