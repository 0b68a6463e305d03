"""The torch side: models, training, evaluation, pretrained starts, our pretraining ladder, and the
head measurements. The only folder that imports torch or transformers at module level.
"""
