from headsearch.cli import main

main()
