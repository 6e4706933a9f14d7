from raftkv.cli.main import main

main()
