"""The BiLSTM tagger of bilstm_tagger written per sentence, 64 sentences' losses summed into one
graph before backward and one SGD update; without and with --dynet-autobatch 1."""
from bench.tagger_model import Tagger

UNIT = "sentences/s"
SENTENCES = 64
CONFIGS = [{"autobatch": 0}, {"autobatch": 1}]


def make(dy, **config):
    tagger = Tagger(dy, sentences=256, **config)
    trainer = dy.SimpleSGDTrainer(tagger.model, 0.1)
    it = [0]

    def step():
        dy.renew_cg()
        mlp = tagger.mlp_expressions()
        losses = []
        for _ in range(SENTENCES):
            words, gold = tagger.sents[it[0] % len(tagger.sents)]
            it[0] += 1
            losses.extend(tagger.losses(words, gold, mlp))
        loss = dy.esum(losses)
        loss.value()
        loss.backward()
        trainer.update()
        return SENTENCES

    step.model = tagger.model   # the reference's trainer dangles if its collection is garbage-collected
    return step
