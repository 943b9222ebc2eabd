"""IntentFlow: the cart-abandonment classifier, trained on the marts the DAG has just validated.

Run locally: ``python include/flows/train_intent.py run``; on AWS Batch, launch with
``SKIFF_TRAIN_ON=batch`` (the Airflow operator adds ``--with batch``).
"""

from metaflow import Parameter, card, resources, retry, step
from training_flow import TrainingFlow, forward_run_env

from skiff.train import step_resources


@forward_run_env
class IntentFlow(TrainingFlow):
    """Shopper intent: will a session that added to cart end in a purchase?

    1. start: read the marts up to the data interval, record the data version, build the
       prefixes at the add and 2/4/6/8/10 events after it, split by time.
    2. train: Keras GRU over event tokens (GPU on Batch), saved as a servable bundle ...
       baselines: ... majority class and logistic regression on counts, fitted beside it ...
       champion: ... and the model serving now, re-scored on this run's prefixes.
    3. evaluate: ROC-AUC, F1, precision/recall at the threshold, per offset, in a card.
    4. end: log params, data version and metrics to Weights & Biases.
    """

    epochs = Parameter("epochs", help="training epochs", default=8, type=int)

    @retry(times=2)
    @step
    def start(self):
        """Read the marts and build the intent examples."""
        from skiff.train import intent

        self.data = intent.prepare(*self.read_marts())
        print(f"data {self.data_version['id']}: {self.data.info}")
        self.next(self.train, self.baselines, self.champion)

    @resources(**step_resources())
    @step
    def train(self):
        """Fit the Keras model, score train and held-out prefixes, write the bundle."""
        from skiff.train import intent

        fitted = intent.train(self.data, epochs=self.epochs, seed=self.seed,
                              start_from=self.warm_start("intent"))
        self.outputs = {intent.MODEL: intent.model_scores(fitted.model, self.data)}
        self.keep_model(fitted, kind="intent", vocabulary=self.data.vocab, max_len=self.data.max_len)
        self.next(self.evaluate)

    @step
    def baselines(self):
        """Fit the majority class and logistic regression on event counts."""
        from skiff.train import intent

        self.outputs = intent.baseline_scores(self.data)
        self.next(self.evaluate)

    @step
    def champion(self):
        """Score the serving champion, if any, on the same prefixes."""
        from skiff.train import champion

        found = self.load_champion("intent")
        self.outputs = {found.name: champion.intent_scores(found.model, self.data)} if found else {}
        self.next(self.evaluate)

    @card(type="blank")
    @step
    def evaluate(self, inputs):
        """Score every model on the same held-out prefixes."""
        from skiff.train import intent

        self.metrics = self.collect(inputs, intent.MODEL, "roc_auc",
                                    lambda out: intent.score(self.data, *out),
                                    show=("roc_auc", "roc_auc@add", "f1"))
        self.next(self.end)

    @step
    def end(self):
        """Log the run to Weights & Biases."""
        self.log_run(["intent"])


if __name__ == "__main__":
    IntentFlow()
