from kubejit.cli.app import main

main()
