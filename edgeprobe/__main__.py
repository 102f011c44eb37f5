from edgeprobe.cli import main

main()
