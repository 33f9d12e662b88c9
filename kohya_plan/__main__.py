from kohya_plan.cli import main

main()
