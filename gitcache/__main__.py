from gitcache.cli.main import main

main(prog_name="gitcache")  # not "python -m gitcache": in messages and for completion
