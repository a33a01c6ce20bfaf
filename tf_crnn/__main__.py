from tf_crnn.cli import main

main()
