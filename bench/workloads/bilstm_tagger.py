"""BiLSTM tagger training, one sentence per step: embeddings 64, a VanillaLSTMBuilder of 64 each
way, an MLP of 32, 50 tags, vocabulary 10,000, sentences of 10-30 words; forward, backward, SGD.
The second config uses the 2.0 LSTMBuilder's cell (CoupledLSTMBuilder), what dy.LSTMBuilder is in
DyNet 2.0 code."""
from bench.tagger_model import Tagger

UNIT = "sentences/s"
CONFIGS = [{"vocab": 10000, "emb": 64, "hidden": 64, "mlp": 32, "tags": 50},
           {"vocab": 10000, "emb": 64, "hidden": 64, "mlp": 32, "tags": 50, "cell": "coupled"}]


def make(dy, **config):
    tagger = Tagger(dy, **config)
    trainer = dy.SimpleSGDTrainer(tagger.model, 0.1)
    it = [0]

    def step():
        words, gold = tagger.sents[it[0] % len(tagger.sents)]
        it[0] += 1
        dy.renew_cg()
        loss = dy.esum(tagger.losses(words, gold, tagger.mlp_expressions()))
        loss.value()
        loss.backward()
        trainer.update()
        return 1

    step.model = tagger.model   # the reference's trainer dangles if its collection is garbage-collected
    return step
