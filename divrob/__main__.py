from divrob.cli import main

main()
