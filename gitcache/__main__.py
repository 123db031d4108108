from gitcache.cli.main import main

main()
