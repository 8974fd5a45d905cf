"""RNN builders and their states, BiRNN, and softmax builders."""
