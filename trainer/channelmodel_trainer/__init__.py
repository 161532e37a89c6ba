"""The channelmodel trainer: manifest in, Teachable-Machine-format TF.js model out.

Imported only by `channelmodel train`: it needs TensorFlow, which the operator
image does not carry. Stages live in small modules (manifest, download, decode,
embed, train, export, publish) tied together by `pipeline`.
"""
