from trialwatch.streams.app import main

main()
