from tf_crnn.cli import run

run()
